/**
 * An interceptor that learns how every RPC ended: `start` runs when a call begins and returns the
 * callback told the outcome (undefined for success, the error, or `aborted` when the client went
 * away), once for unary calls and at the end of the response stream for streaming ones.
 */
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { hookStream, keepError } from "./stream-errors.js";

/** Called once per RPC with its outcome. */
export type RpcEnd = (err: unknown, aborted: boolean) => void;

/** Creates an interceptor that reports each call's outcome to the callback `start` returns. */
export function createRpcEndInterceptor(start: (req: UnaryRequest | StreamRequest) => RpcEnd): Interceptor {
  return (next) => async (req) => {
    const done = start(req);
    try {
      const res = await next(req);
      if (!res.stream) {
        done(undefined, false);
        return res;
      }
      return hookStream(res, keepError, done);
    } catch (err) {
      done(err, false);
      throw err;
    }
  };
}
