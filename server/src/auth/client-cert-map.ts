/**
 * Which client certificates get which scopes: the `--client-cert-scopes` table. An entry is
 * `<name kind>:<pattern>=<scope>[,<scope>...]`, entries are separated by `;`, e.g.
 * `cn:daemon-*=agent; dns:core.example.com=execution,tasks:read`. The kinds are the certificate's
 * subject common name (`cn`) and its subject alternative names (`dns`, `ip`, `uri`, `email`). A `*`
 * in a pattern stands for any run of characters, except that in a `dns` pattern it stays within one
 * label (`*.example.com` matches `a.example.com`, not `a.b.example.com`). Entries are tried in the
 * order given and the first that matches one of the certificate's names decides its scopes, so a
 * narrow entry goes before a broad one.
 */
import { isScope, type Scope } from "./scopes.js";

/** The kinds of certificate names an entry can match. */
export const certNameKinds = ["cn", "dns", "ip", "uri", "email"] as const;

/** One kind of certificate name. */
export type CertNameKind = (typeof certNameKinds)[number];

/** One name a certificate carries: its subject CN, or one subject alternative name. */
export interface CertName {
  readonly kind: CertNameKind;
  readonly value: string;
}

/** One parsed entry of the table. */
export interface ClientCertEntry {
  readonly kind: CertNameKind;
  /** The pattern as written, for messages. */
  readonly pattern: string;
  readonly scopes: readonly Scope[];
  readonly test: (value: string) => boolean;
}

/** The parsed table, in the order written. */
export type ClientCertMap = readonly ClientCertEntry[];

/** What an entry matched: the entry and the certificate name it matched. */
export interface ClientCertMatch {
  readonly entry: ClientCertEntry;
  readonly name: CertName;
}

/** DNS names and email addresses compare without regard to case; the other kinds exactly. */
const caseless: ReadonlySet<CertNameKind> = new Set<CertNameKind>(["dns", "email"]);

/**
 * Parses the table; throws an Error naming the bad entry and what was expected (the configuration
 * turns it into a ConfigError naming the flag).
 */
export function parseClientCertMap(text: string): ClientCertMap {
  const entries: ClientCertEntry[] = [];
  for (const raw of text.split(";")) {
    const item = raw.trim();
    if (item === "") continue;
    const colon = item.indexOf(":");
    // Scopes never contain "=", so the last one separates them from a pattern that may (a URI).
    const eq = item.lastIndexOf("=");
    const kind = colon > 0 ? item.slice(0, colon).trim().toLowerCase() : "";
    const pattern = colon > 0 && eq > colon ? item.slice(colon + 1, eq).trim() : "";
    if (!(certNameKinds as readonly string[]).includes(kind) || pattern === "") {
      throw new Error(
        `bad entry "${item}": expected <kind>:<pattern>=<scope>[,<scope>...] with kind one of ${certNameKinds.join(", ")}, e.g. cn:daemon-*=agent`,
      );
    }
    const scopes = item
      .slice(eq + 1)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    const unknown = scopes.filter((s) => !isScope(s));
    if (scopes.length === 0 || unknown.length > 0) {
      throw new Error(
        `bad entry "${item}": ${scopes.length === 0 ? "no scopes" : `unknown scope ${unknown.map((s) => `"${s}"`).join(", ")}`}; scopes are tasks:read, tasks:write, tasks:cancel, agent, execution, admin`,
      );
    }
    const k = kind as CertNameKind;
    entries.push({ kind: k, pattern, scopes: scopes as Scope[], test: patternTest(k, pattern) });
  }
  return entries;
}

/** The first entry that matches one of `names`, or undefined. */
export function matchClientCert(map: ClientCertMap, names: readonly CertName[]): ClientCertMatch | undefined {
  for (const entry of map) {
    for (const name of names) {
      if (name.kind === entry.kind && entry.test(name.value)) return { entry, name };
    }
  }
  return undefined;
}

function patternTest(kind: CertNameKind, pattern: string): (value: string) => boolean {
  const fold = caseless.has(kind);
  const p = fold ? pattern.toLowerCase() : pattern;
  if (!p.includes("*")) return fold ? (v) => v.toLowerCase() === p : (v) => v === p;
  const any = kind === "dns" ? "[^.]*" : ".*";
  const re = new RegExp(
    `^${p
      .split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\/-]/g, "\\$&"))
      .join(any)}$`,
    "s",
  );
  return fold ? (v) => re.test(v.toLowerCase()) : (v) => re.test(v);
}
