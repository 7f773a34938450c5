/**
 * Counts every RPC by its outcome code (`rpc_<code>_total`, e.g. `rpc_not_found_total`), for
 * GetMetrics and GET /metrics.
 */
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { GatewayMetrics } from "../services/gateway-metrics.js";
import { createRpcEndInterceptor, type RpcEnd } from "./rpc-end.js";

/** Creates the counting interceptor; place it after logging so it sees mapped errors. */
export function createMetricsInterceptor(metrics: GatewayMetrics): Interceptor {
  const counted: RpcEnd = {
    onEnd(err, aborted) {
      const code = aborted
        ? "canceled"
        : err === undefined
          ? "ok"
          : codeToString(ConnectError.from(err).code);
      metrics.count(`rpc_${code}_total`);
    },
  };
  return createRpcEndInterceptor(() => counted);
}
