/**
 * Logs every RPC once it ends: method, status code and duration, at `info` for success and client
 * errors and at `error` for Internal/Unknown/DataLoss, with the cause (never sent to the client).
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { kLog } from "../context-keys.js";
import { createRpcEndInterceptor, type RpcEnd } from "./rpc-end.js";
import { rpcNameOf } from "./rpc-name.js";

const serverFaults = new Set([Code.Internal, Code.Unknown, Code.DataLoss]);

/** Creates the logging interceptor; place it first (outermost) so it sees mapped errors. */
export function createLoggingInterceptor(): Interceptor {
  return createRpcEndInterceptor(
    (req) => new LoggedRpc(req.contextValues.get(kLog), rpcNameOf(req.method), performance.now()),
  );
}

type Logger = (typeof kLog)["defaultValue"];

/** One call's log line, written when it ends. */
class LoggedRpc implements RpcEnd {
  constructor(
    private readonly log: Logger,
    private readonly rpc: string,
    private readonly started: number,
  ) {}

  onEnd(err: unknown, aborted: boolean): void {
    const { log, rpc } = this;
    const ms = Math.round((performance.now() - this.started) * 100) / 100;
    if (aborted) {
      log.info({ rpc, code: "canceled", ms }, "rpc ended by client");
      return;
    }
    if (err === undefined) {
      log.info({ rpc, code: "ok", ms }, "rpc");
      return;
    }
    const ce = ConnectError.from(err);
    const code = codeToString(ce.code);
    if (serverFaults.has(ce.code)) {
      log.error({ rpc, code, ms, err: ce.cause ?? ce }, "rpc failed");
    } else {
      log.info({ rpc, code, ms, reason: ce.rawMessage }, "rpc");
    }
  }
}
