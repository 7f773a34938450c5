/**
 * Raw HTTP exchanges for the fast-path differential suite: sends exactly the bytes a scenario
 * describes over cleartext HTTP/2 (prior knowledge, `node:http2`) or HTTP/1.1 (`node:http`), and
 * reports what came back without interpreting it. Every exchange is bounded: a request that gets no
 * complete answer in time is reported as `timed-out` (and its connection destroyed), never left
 * hanging, so a difference in how long each side keeps a client waiting is seen as a difference.
 *
 * Each exchange uses its own connection (or session) and closes it, so the test server's leak check
 * stays quiet.
 */
import * as http from "node:http";
import * as http2 from "node:http2";

/** Cleartext HTTP/2 with prior knowledge, or HTTP/1.1. */
export type Transport = "h2" | "h1";

/** How the client abandons a request. */
export type ClientAbort =
  /** HTTP/2: sends part of the body, then resets the stream (RST_STREAM CANCEL); the session stays. */
  | "reset-stream"
  /** Sends part of the body, then destroys the connection. */
  | "close-connection";

/** One request exactly as sent. */
export interface RawRequest {
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  /**
   * Abandon the request after writing `body` (which is then only the first part of what the
   * headers announce): the answer is whatever arrived before, usually nothing.
   */
  readonly abort?: ClientAbort;
}

/** Response headers or trailers as received, lower-case names, pseudo-headers removed. */
export type RawHeaders = Readonly<Record<string, string | readonly string[]>>;

/** What the client observed. */
export type RawAnswer =
  | {
      readonly kind: "response";
      readonly status: number;
      readonly headers: RawHeaders;
      /** HTTP trailers; empty when none were sent (e.g. a gRPC Trailers-Only response). */
      readonly trailers: RawHeaders;
      readonly body: Buffer;
      /**
       * HTTP/2: the response ended but the request stream was still open `settleMs` later, i.e. the
       * server neither read the rest of the body nor reset the stream, and the client is stuck
       * sending it (on flow control). Always false over HTTP/1.1, where node's server discards what
       * it did not read; whether a follow-up reuses the connection shows the same thing there.
       */
      readonly requestStuck: boolean;
      /** HTTP/1.1: the request went on a connection kept alive after an earlier answer. */
      readonly reusedConnection?: boolean;
    }
  /** The client abandoned the request (see ClientAbort) before any response arrived. */
  | { readonly kind: "abandoned" }
  /** The server reset the stream or closed the connection before a complete response. */
  | { readonly kind: "reset"; readonly status?: number; readonly code: string }
  /** Nothing complete within the bound. */
  | { readonly kind: "timed-out"; readonly status?: number };

/** Bounds of one exchange. */
export interface ExchangeBounds {
  /** Longest wait for a complete answer. */
  readonly timeoutMs: number;
  /** After the answer, how long the request stream may take to close before it counts as stuck. */
  readonly settleMs: number;
}

/**
 * Sends `req` over `transport` to 127.0.0.1:`port`; never rejects, never takes much longer than
 * the bounds. Over HTTP/2, `followUp` (if given) is then sent on the same session, to show whether
 * the session still serves after what `req` did to it (on a new one if the client destroyed it);
 * over HTTP/1.1 both go through one kept-alive connection (a new one if the first was closed).
 */
export async function exchange(
  transport: Transport,
  port: number,
  req: RawRequest,
  bounds: ExchangeBounds,
  followUp?: RawRequest,
): Promise<{ answer: RawAnswer; followUp?: RawAnswer }> {
  if (transport === "h1") {
    if (!followUp) return { answer: await exchangeH1(port, req, bounds) };
    // One kept-alive connection for both, so the follow-up shows whether the gateway kept it usable.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const answer = await exchangeH1(port, req, bounds, agent);
      return { answer, followUp: await exchangeH1(port, followUp, bounds, agent) };
    } finally {
      agent.destroy();
    }
  }
  let next: RawAnswer | undefined;
  const answer = await withSession(port, bounds, async (session) => {
    const first = await onStream(session, req, bounds);
    if (followUp && !session.destroyed) next = await onStream(session, followUp, bounds);
    return first;
  });
  if (followUp && !next) next = await withSession(port, bounds, (s) => onStream(s, followUp, bounds));
  return next ? { answer, followUp: next } : { answer };
}

/** Runs `use` on a fresh HTTP/2 session, then closes it (destroys it if it does not close in time). */
async function withSession<T>(
  port: number,
  bounds: ExchangeBounds,
  use: (session: http2.ClientHttp2Session) => Promise<T>,
): Promise<T> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const closed = new Promise<void>((resolve) => session.once("close", resolve));
  // Session errors surface on the streams (as resets); the session itself is closed below.
  session.on("error", () => {});
  try {
    return await use(session);
  } finally {
    session.close();
    // Bounded: a stream the server never ends would keep a graceful close waiting for ever.
    const timer = setTimeout(() => session.destroy(), bounds.settleMs);
    await closed;
    clearTimeout(timer);
  }
}

/** Sends `req` as one stream of `session` and reports its answer (see RawAnswer). */
function onStream(
  session: http2.ClientHttp2Session,
  req: RawRequest,
  bounds: ExchangeBounds,
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let headers: RawHeaders = {};
    let trailers: RawHeaders = {};
    const chunks: Buffer[] = [];
    let settled = false;
    let closed = false;
    const settle = (answer: RawAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    // Node ends GET requests with their HEADERS frame; an empty body is sent the same way.
    const endStream = req.abort === undefined && req.body.length === 0;
    const stream = session.request(
      { ":method": req.method, ":path": req.path, ...req.headers },
      { endStream },
    );
    let timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      settle({ kind: "timed-out", status });
    }, bounds.timeoutMs);
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = withoutPseudoHeaders(h);
    });
    stream.on("trailers", (t) => {
      trailers = withoutPseudoHeaders(t);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      if (status === undefined) {
        settle({ kind: "reset", code: "end without response" });
        return;
      }
      const answer = (requestStuck: boolean): RawAnswer => ({
        kind: "response",
        status: status ?? 0,
        headers,
        trailers,
        body: Buffer.concat(chunks),
        requestStuck,
      });
      if (closed) {
        settle(answer(false));
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(() => {
        settle(answer(true));
        // Give up the upload, as a client would, so the session can close (and serve a follow-up).
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, bounds.settleMs);
      stream.once("close", () => settle(answer(false)));
    });
    // 'close' after 'end' is handled above; before it, the stream was reset by either side.
    stream.on("close", () => {
      closed = true;
      if (!stream.readableEnded) settle({ kind: "reset", status, code: rstCodeName(stream.rstCode) });
    });
    // Errors (e.g. writing to a stream the server already reset) end in 'close'; nothing to add.
    stream.on("error", () => {});
    if (req.abort === undefined) {
      if (!endStream) stream.end(req.body);
      return;
    }
    stream.write(req.body, () => {
      if (status !== undefined) return;
      settle({ kind: "abandoned" });
      if (req.abort === "reset-stream") stream.close(http2.constants.NGHTTP2_CANCEL);
      else session.destroy();
    });
  });
}

/**
 * Sends `req` over HTTP/1.1: on a fresh connection closed after the answer (`Connection: close`),
 * or through `agent`, which keeps its one connection alive for the next request.
 */
function exchangeH1(
  port: number,
  req: RawRequest,
  bounds: ExchangeBounds,
  agent?: http.Agent,
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let settled = false;
    const settle = (answer: RawAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const request = http.request(
      {
        host: "127.0.0.1",
        port,
        method: req.method,
        path: req.path,
        agent: agent ?? false,
        headers: agent ? req.headers : { connection: "close", ...req.headers },
      },
      (res) => {
        status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          settle({
            kind: "response",
            status: res.statusCode ?? 0,
            headers: res.headers as RawHeaders,
            trailers: res.trailers as RawHeaders,
            body: Buffer.concat(chunks),
            requestStuck: false,
            reusedConnection: request.reusedSocket,
          }),
        );
        res.on("error", (err: NodeJS.ErrnoException) =>
          settle({ kind: "reset", status, code: err.code ?? "" }),
        );
      },
    );
    const timer = setTimeout(() => {
      request.destroy();
      settle({ kind: "timed-out", status });
    }, bounds.timeoutMs);
    // A server that answers early and closes may make the rest of the upload fail (EPIPE,
    // ECONNRESET); the answer, if complete, is what counts.
    request.on("error", (err: NodeJS.ErrnoException) => {
      if (status === undefined) settle({ kind: "reset", code: err.code ?? err.message });
    });
    if (req.abort === undefined) {
      request.end(req.body);
      return;
    }
    request.flushHeaders();
    request.write(req.body, () => {
      if (status !== undefined) return;
      settle({ kind: "abandoned" });
      request.destroy();
    });
  });
}

function withoutPseudoHeaders(h: http2.IncomingHttpHeaders): RawHeaders {
  const out: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(h)) {
    if (!name.startsWith(":") && value !== undefined) out[name] = value;
  }
  return out;
}

/** HTTP/2 error codes by number (RFC 9113, section 7). */
const rstCodeNames = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];

function rstCodeName(code: number | undefined): string {
  return code === undefined ? "closed" : (rstCodeNames[code] ?? String(code));
}
