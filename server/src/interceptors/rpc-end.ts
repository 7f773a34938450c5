/**
 * An interceptor that learns how every RPC ended: `start` runs when a call begins and returns the
 * object told the outcome (undefined for success, the error, or `aborted` when the client went
 * away), once for unary calls and at the end of the response stream for streaming ones.
 */
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { hookStream } from "./stream-errors.js";

/**
 * Told once per RPC its outcome; for a stream it is the stream's hook itself, so an interceptor that
 * keeps no state per call can answer every call with the same object.
 */
export interface RpcEnd {
  onEnd(err: unknown, aborted: boolean): void;
}

/** Creates an interceptor that reports each call's outcome to the callback `start` returns. */
export function createRpcEndInterceptor(start: (req: UnaryRequest | StreamRequest) => RpcEnd): Interceptor {
  return (next) => async (req) => {
    const done = start(req);
    try {
      const res = await next(req);
      if (!res.stream) {
        done.onEnd(undefined, false);
        return res;
      }
      return hookStream(res, done);
    } catch (err) {
      done.onEnd(err, false);
      throw err;
    }
  };
}
