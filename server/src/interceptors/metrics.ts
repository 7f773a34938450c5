/**
 * Counts every RPC by its outcome code (`rpc_<code>_total`, e.g. `rpc_not_found_total`), for
 * GetMetrics and GET /metrics.
 */
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { GatewayMetrics } from "../services/gateway-metrics.js";
import { mapStreamErrors } from "./stream-errors.js";

/** Creates the counting interceptor; place it after logging so it sees mapped errors. */
export function createMetricsInterceptor(metrics: GatewayMetrics): Interceptor {
  const done = (err: unknown, aborted = false) => {
    const code = aborted ? "canceled" : err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
    metrics.count(`rpc_${code}_total`);
  };
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) {
        done(undefined);
        return res;
      }
      return { ...res, message: mapStreamErrors(res.message, (e) => e, done) };
    } catch (err) {
      done(err);
      throw err;
    }
  };
}
