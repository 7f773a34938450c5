/**
 * A SpageAPI client for the command line: native gRPC to --endpoint, with the bearer token when
 * given, and the CA and client certificate of the TLS options. `close()` ends the HTTP/2 session so the process can exit.
 */
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import type { CommonFlags } from "./cli-args.js";

/** An open client. */
export interface GatewayClient {
  readonly api: Client<typeof SpageAPI>;
  close(): void;
}

/** Opens a client for the common flags. */
export function openClient(flags: CommonFlags): GatewayClient {
  const sessions = new Http2SessionManager(flags.endpoint, undefined, flags.tls);
  const auth: Interceptor = (next) => (req) => {
    if (flags.token) req.header.set("authorization", `Bearer ${flags.token}`);
    return next(req);
  };
  const api = createClient(
    SpageAPI,
    createGrpcTransport({ baseUrl: flags.endpoint, sessionManager: sessions, interceptors: [auth] }),
  );
  return { api, close: () => sessions.abort() };
}
