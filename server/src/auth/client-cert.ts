/**
 * The identity a TLS connection's client certificate gives its calls. It is worked out once per
 * connection, when the handshake completes (listen.ts calls `rememberClientCert`), and kept on the
 * socket: every call on the connection then reads it (`clientCertOf`) without touching the
 * certificate again.
 *
 * A certificate that failed verification (unknown issuer, expired, ...) refuses every call on its
 * connection that needs credentials, whatever else the call carries: a caller who presents a bad
 * certificate has a mistake to fix, and letting it in anonymously would hide that. A verified
 * certificate that no `--client-cert-scopes` entry matches refuses the calls that rely on it.
 */
import type * as net from "node:net";
import type * as tls from "node:tls";
import { type CertName, type ClientCertMap, matchClientCert } from "./client-cert-map.js";
import type { Principal } from "./principal.js";

/** What a connection's client certificate means for its calls. */
export interface ClientCertIdentity {
  /** The principal of a verified certificate an entry matched. */
  readonly principal?: Principal;
  /** Why the certificate authenticates nothing, when it does not. */
  readonly refusal?: string;
  /** The certificate failed verification: its connection's calls are refused, Bearer header or not. */
  readonly untrusted: boolean;
}

/**
 * Where the identity is kept on the socket. A symbol property rather than a WeakMap: the sockets
 * the HTTP/2 layer hands out (`session.socket`, `req.socket`) are proxies that forward property
 * reads to the TLS socket, but are not the TLS socket itself.
 */
const kIdentity = Symbol("client certificate identity");
type WithIdentity = { [kIdentity]?: ClientCertIdentity };

/** Works out and keeps the identity of a connection whose TLS handshake just completed. */
export function rememberClientCert(socket: tls.TLSSocket, map: ClientCertMap): void {
  const identity = identify(socket, map);
  if (identity) (socket as WithIdentity)[kIdentity] = identity;
}

/** The identity a connection's client certificate gives, or undefined when it presented none. */
export function clientCertOf(socket: net.Socket | undefined): ClientCertIdentity | undefined {
  return socket ? (socket as WithIdentity)[kIdentity] : undefined;
}

function identify(socket: tls.TLSSocket, map: ClientCertMap): ClientCertIdentity | undefined {
  const cert = socket.getPeerCertificate();
  // No certificate: an empty object (or null once the socket is gone).
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const subject = subjectText(cert);
  if (!socket.authorized) {
    // On the server side Node gives OpenSSL's verification code as a string, not an Error.
    const err = socket.authorizationError as unknown as Error | string | null;
    const code = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
    const reason = verifyReasons[code] ?? "it failed verification";
    return { untrusted: true, refusal: `client certificate ${subject} refused: ${reason} (${code})` };
  }
  const names = certNames(cert);
  const match = matchClientCert(map, names);
  if (!match) {
    return {
      untrusted: false,
      refusal: `client certificate ${subject} matches no --client-cert-scopes entry; add one for one of its names (${names.map((n) => `${n.kind}:${n.value}`).join(", ") || "none"}) or send a Bearer key`,
    };
  }
  return {
    untrusted: false,
    principal: {
      name: `cert:${match.name.kind}:${match.name.value}`,
      keyId: "",
      sessionId: "",
      clientId: "",
      scopes: new Set(match.entry.scopes),
      expiresAt: new Date(cert.valid_to),
      certificate: `sha256 ${cert.fingerprint256}`,
    },
  };
}

const untrustedIssuer = "it is not signed by a CA this gateway trusts (--tls-client-ca)";

/** What the verification codes a client certificate most often fails with mean. */
const verifyReasons: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: "certificate has expired",
  CERT_NOT_YET_VALID: "certificate is not yet valid",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: untrustedIssuer,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: untrustedIssuer,
  UNABLE_TO_GET_ISSUER_CERT: untrustedIssuer,
  SELF_SIGNED_CERT_IN_CHAIN: untrustedIssuer,
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed",
  CERT_SIGNATURE_FAILURE: "its signature does not verify",
  INVALID_PURPOSE: "it is not meant for client authentication (extended key usage)",
  CERT_REVOKED: "certificate has been revoked",
};

/** The subject as messages show it, e.g. `CN=daemon-1`. */
function subjectText(cert: tls.PeerCertificate): string {
  const cn = cert.subject?.CN as string | string[] | undefined;
  const first = Array.isArray(cn) ? cn[0] : cn;
  return first ? `CN=${first}` : `with serial ${cert.serialNumber}`;
}

const sanKinds: Readonly<Record<string, CertName["kind"]>> = {
  DNS: "dns",
  "IP Address": "ip",
  URI: "uri",
  email: "email",
};

/** The certificate's subject CNs and subject alternative names. */
export function certNames(cert: tls.PeerCertificate): CertName[] {
  const names: CertName[] = [];
  const cn = cert.subject?.CN as string | string[] | undefined;
  for (const value of Array.isArray(cn) ? cn : cn ? [cn] : []) names.push({ kind: "cn", value });
  // Node lists the names as `DNS:a, IP Address:127.0.0.1, URI:...`; a value holding a comma or a
  // quote is written as a JSON string.
  const san = cert.subjectaltname ?? "";
  for (const m of san.matchAll(/(DNS|IP Address|URI|email):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    const kind = sanKinds[m[1] ?? ""];
    let value = m[2] ?? "";
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (kind && value !== "") names.push({ kind, value });
  }
  return names;
}
