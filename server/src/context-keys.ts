/**
 * Typed per-request values that travel with each RPC in Connect's context (never on mutated request
 * objects). Filled in once per request by `routes.ts` from the Fastify request.
 */
import { createContextKey } from "@connectrpc/connect";
import type { FastifyBaseLogger } from "fastify";
import { pino } from "pino";

/** The request-scoped logger (Fastify's child logger carrying the request id). */
export const kLog = createContextKey<FastifyBaseLogger>(pino({ level: "silent" }), {
  description: "request logger",
});

/** The caller's network address, e.g. `127.0.0.1`; empty when unknown. */
export const kPeerAddress = createContextKey<string>("", { description: "peer address" });

/** The request id assigned by Fastify, echoed in logs. */
export const kRequestId = createContextKey<string>("", { description: "request id" });
