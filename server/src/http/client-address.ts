/**
 * The real client address of a request. Behind a reverse proxy or a sidecar every request comes
 * from the proxy's address (often loopback), so the gateway believes `Forwarded` (RFC 7239) or
 * `X-Forwarded-For` only from peers listed in --trusted-proxies, and takes the client to be the
 * nearest address in the chain that is not itself a trusted proxy. A request that carries such a
 * header from any other peer keeps its socket address but is marked as having come through an
 * untrusted proxy: its real origin is unknown, so it is never let in as a local Spage core.
 */
import { BlockList, isIP } from "node:net";

/** What the gateway knows of where a request came from. */
export interface ClientAddress {
  readonly address: string;
  /** It carries forwarding headers from a peer not trusted as a proxy. */
  readonly viaUntrustedProxy: boolean;
}

/** Header values as Node gives them. */
type HeaderValue = string | string[] | undefined;

/** Resolves client addresses with one list of trusted proxies. */
export type ClientAddressResolver = (
  peer: string,
  forwarded: HeaderValue,
  xForwardedFor: HeaderValue,
) => ClientAddress;

/**
 * Parses a trusted-proxy entry: an address (`127.0.0.1`, `::1`) or a CIDR (`10.0.0.0/8`).
 * Returns undefined when it is neither.
 */
export function parseProxyEntry(
  entry: string,
): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const [address = "", bits] = entry.split("/");
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d+$/.test(bits) ? Number(bits) : Number.NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/** Creates the resolver for `trustedProxies` (entries already checked with parseProxyEntry). */
export function createClientAddressResolver(trustedProxies: readonly string[]): ClientAddressResolver {
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const p = parseProxyEntry(entry);
    if (p) trusted.addSubnet(p.address, p.prefix, p.family);
  }
  const isTrusted = (address: string) => {
    const a = plainAddress(address);
    const version = isIP(a);
    return version !== 0 && trusted.check(a, version === 4 ? "ipv4" : "ipv6");
  };
  return (peer, forwarded, xForwardedFor) => {
    if (forwarded === undefined && xForwardedFor === undefined)
      return { address: peer, viaUntrustedProxy: false };
    if (!isTrusted(peer)) return { address: peer, viaUntrustedProxy: true };
    const chain = forwarded !== undefined ? forwardedFor(forwarded) : listOf(xForwardedFor);
    // The nearest hop that is not one of our proxies is the client; a chain of proxies only (or
    // one that names nothing usable) leaves the farthest one named.
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = chain[i] ?? "";
      if (isIP(hop) === 0) return { address: peer, viaUntrustedProxy: true };
      if (!isTrusted(hop)) return { address: hop, viaUntrustedProxy: false };
    }
    return { address: chain[0] ?? peer, viaUntrustedProxy: false };
  };
}

/** `::ffff:127.0.0.1` as `127.0.0.1`. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function listOf(value: HeaderValue): string[] {
  const all = Array.isArray(value) ? value.join(",") : (value ?? "");
  return all
    .split(",")
    .map((s) => plainAddress(s.trim()))
    .filter((s) => s !== "");
}

/** The `for=` addresses of a Forwarded header, nearest last: `for=192.0.2.43, for="[2001:db8::1]:4711"`. */
function forwardedFor(value: HeaderValue): string[] {
  const out: string[] = [];
  for (const element of listOf(value)) {
    for (const pair of element.split(";")) {
      const [key = "", raw = ""] = pair.split("=", 2).map((s) => s.trim());
      if (key.toLowerCase() !== "for") continue;
      let v = raw.replace(/^"|"$/g, "");
      if (v.startsWith("[")) v = v.slice(1, v.indexOf("]"));
      else if (isIP(v) === 0 && v.includes(":") && v.split(":").length === 2) v = v.split(":")[0] ?? "";
      out.push(plainAddress(v));
    }
  }
  return out;
}
