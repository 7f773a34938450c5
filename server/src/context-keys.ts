/**
 * Typed per-request values that travel with each RPC in Connect's context (never on mutated request
 * objects). The first six are filled in once per request from the Fastify request (app.ts); the
 * principal by the auth interceptor.
 */
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { createContextKey } from "@connectrpc/connect";
import type { FastifyBaseLogger } from "fastify";
import { pino } from "pino";
import type { ClientCertIdentity } from "./auth/client-cert.js";
import type { Principal } from "./auth/principal.js";
import type { AuditInWrite } from "./services/audit-log.js";

/** The request-scoped logger (Fastify's child logger carrying the request id). */
export const kLog = createContextKey<FastifyBaseLogger>(pino({ level: "silent" }), {
  description: "request logger",
});

/**
 * The caller's network address, e.g. `127.0.0.1`: the socket's peer, or behind a trusted proxy the
 * client it names (http/client-address.ts); empty when unknown.
 */
export const kPeerAddress = createContextKey<string>("", { description: "peer address" });

/** The request carries forwarding headers from a peer not trusted as a proxy (its origin is unknown). */
export const kViaUntrustedProxy = createContextKey<boolean>(false, { description: "via untrusted proxy" });

/**
 * The call's Node request, for what only the transport knows (how an HTTP/2 stream ended); unset on
 * the fast path, which serves no client streams.
 */
export const kNodeRequest = createContextKey<IncomingMessage | Http2ServerRequest | undefined>(undefined, {
  description: "node request",
});

/**
 * What the connection's TLS client certificate says about the caller (auth/client-cert.ts);
 * undefined when it presented none (or the connection is not TLS).
 */
export const kClientCert = createContextKey<ClientCertIdentity | undefined>(undefined, {
  description: "client certificate",
});

/** The request id assigned by Fastify, echoed in logs. */
export const kRequestId = createContextKey<string>("", { description: "request id" });

/** The authenticated caller, set by the auth interceptor; undefined for public methods. */
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/** The API key id the caller's credentials named, even when they were rejected ("" when none). */
export const kClaimedKeyId = createContextKey<string>("", { description: "claimed key id" });

/** Extra detail a handler adds to its audit record (e.g. the name of a created key). */
export const kAuditDetail = createContextKey<string>("", { description: "audit detail" });

/**
 * Set by the audit interceptor on audited unary calls: the call's success record, for the store
 * write that completes the call to commit along with it.
 */
export const kAuditInWrite = createContextKey<AuditInWrite | undefined>(undefined, {
  description: "audit record written with the change",
});
