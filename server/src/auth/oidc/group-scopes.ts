/**
 * Which scopes a person gets: their identity provider's groups (or roles) claim, mapped by the
 * configuration (`--oidc-group-scopes ops=tasks:read+tasks:write,admins=admin`). A person gets the
 * union of the scopes of every mapped group they are in; no mapped group, no scope.
 */
import { allScopes, isScope, type Scope } from "../scopes.js";

/** Scopes per group name. */
export type GroupScopes = ReadonlyMap<string, readonly Scope[]>;

/**
 * Parses `group=scope+scope` entries; returns the map, or the message naming the first bad entry.
 * Scopes within an entry are joined by `+` or spaces.
 */
export function parseGroupScopes(entries: readonly string[]): GroupScopes | string {
  const map = new Map<string, Scope[]>();
  for (const entry of entries) {
    const eq = entry.lastIndexOf("=");
    const group = entry.slice(0, eq).trim();
    const scopes = entry
      .slice(eq + 1)
      .split(/[+\s]+/)
      .filter((s) => s !== "");
    if (eq <= 0 || group === "" || scopes.length === 0) {
      return `entry "${entry}" is not group=scope[+scope...]`;
    }
    const unknown = scopes.find((s) => !isScope(s));
    if (unknown !== undefined) {
      return `entry "${entry}" names the unknown scope "${unknown}" (scopes: ${allScopes.join(", ")})`;
    }
    map.set(group, [...new Set([...(map.get(group) ?? []), ...(scopes as Scope[])])]);
  }
  return map;
}

/**
 * The group names a token's claims carry at `claim` (a dotted path such as `realm_access.roles`):
 * an array of strings, or one string of space- or comma-separated names.
 */
export function groupsOf(claims: Readonly<Record<string, unknown>>, claim: string): string[] {
  let v: unknown = claims;
  for (const part of claim.split(".")) {
    v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined;
  }
  if (typeof v === "string") return v.split(/[\s,]+/).filter((s) => s !== "");
  if (Array.isArray(v)) return v.filter((g): g is string => typeof g === "string");
  return [];
}

/** The scopes `groups` map to, in the order of allScopes. */
export function scopesOfGroups(map: GroupScopes, groups: readonly string[]): Scope[] {
  const got = new Set<Scope>();
  for (const g of groups) for (const s of map.get(g) ?? []) got.add(s);
  return allScopes.filter((s) => got.has(s));
}
