/**
 * How a client ended a streaming call, told apart at the HTTP/2 level: it half-closed its side
 * (END_STREAM, then the call finished normally: "closed"), reset the stream (RST_STREAM CANCEL, how
 * a Spage core ends its run: "canceled"), or its connection went away under the stream (socket
 * closed, or cut by the listener's keepalive pings: "dropped").
 */
import type { IncomingMessage } from "node:http";
import { constants, type Http2ServerRequest } from "node:http2";
import type { CoreStreamEnd } from "../store/task-store.js";

/**
 * Resolves, once the call's stream has closed, with how the client of `raw` (the call's Node
 * request) ended it. Call it when the call starts.
 *
 * Node ends a reset stream's request body before it closes the stream, so a reader of the body
 * cannot tell a reset from a half-close; the stream's close can. It is read at 'close', not at
 * 'aborted': a session being destroyed resets its streams (and emits 'aborted') before it counts as
 * destroyed itself.
 */
export function watchPeerEnd(raw: IncomingMessage | Http2ServerRequest | undefined): Promise<CoreStreamEnd> {
  if (!raw) return Promise.resolve("closed");
  if (!("stream" in raw)) {
    // HTTP/1.1 carries no stream reset: a request that arrived whole was closed, anything else dropped.
    return new Promise((resolve) => raw.once("close", () => resolve(raw.complete ? "closed" : "dropped")));
  }
  const stream = raw.stream;
  const session = stream.session;
  const read = (): CoreStreamEnd => {
    if (session?.destroyed) return "dropped";
    const code = stream.rstCode;
    if (code === constants.NGHTTP2_CANCEL) return "canceled";
    return code === constants.NGHTTP2_NO_ERROR ? "closed" : "dropped";
  };
  if (stream.closed) return Promise.resolve(read());
  return new Promise((resolve) => stream.once("close", () => resolve(read())));
}
