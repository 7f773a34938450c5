/**
 * The one-port listener. A single TCP (or TLS) port serves native gRPC over HTTP/2 and Connect and
 * gRPC-Web over HTTP/1.1 and HTTP/2. Cleartext connections are told apart by their first bytes: the
 * HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, possibly split across packets) goes to an
 * inner HTTP/2 server, anything else to an inner HTTP/1.1 server. TLS connections are routed by the
 * ALPN protocol they negotiated (h2 or http/1.1).
 *
 * Plugged into Fastify through `serverFactory`; Fastify ignores its own timeout options when a
 * serverFactory is given, so every timeout is set on the inner servers here.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import type { FastPath } from "./fast-path/fast-path.js";

/** The HTTP/2 connection preface every h2c client sends first (RFC 9113, section 3.4). */
export const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Request handler shared by both protocols (Fastify's, or any Node compat handler). */
export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Connection limits of the listener. */
export interface ListenerOptions {
  /** Serve TLS with ALPN h2 and http/1.1 instead of cleartext. */
  readonly tls?: {
    readonly cert: Buffer | string;
    readonly key: Buffer | string;
    /** Ask clients for a certificate, verified against these CAs (mutual TLS). */
    readonly clientCa?: Buffer | string;
    /** With clientCa: refuse the handshake of a client without a valid certificate. */
    readonly requireClientCert?: boolean;
    /** Called once per connection when its handshake completed, before any request is read. */
    readonly onSecureConnection?: (socket: tls.TLSSocket) => void;
  };
  /** Time for a new connection to send its preface or request headers (and finish a TLS handshake). */
  readonly headersTimeoutMs: number;
  /** Time for an HTTP/1.1 request to arrive in full. */
  readonly requestTimeoutMs: number;
  /** How long an idle HTTP/1.1 keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /** How long an HTTP/2 connection with no open stream and no traffic stays open. */
  readonly idleTimeoutMs: number;
  /** Largest accepted request header block, in bytes. */
  readonly maxHeaderBytes: number;
  /**
   * How often HTTP/2 connections with open streams are pinged; one that has not answered by the
   * next ping is destroyed, ending its streams (0: never).
   */
  readonly pingIntervalMs: number;
}

/** The server handed to Fastify: a net.Server (or tls.Server) with the close helpers Fastify uses. */
export interface OnePortServer extends net.Server {
  /** Closes HTTP/1.1 connections that have no request in flight. */
  closeIdleConnections(): void;
  /** Destroys every connection at once. */
  closeAllConnections(): void;
  /** Sends GOAWAY on every HTTP/2 connection: open streams finish, no new ones start. */
  closeHttp2Sessions(): void;
  /** Number of open TCP connections. */
  readonly openConnections: number;
  /** Lets `fast` serve the requests it admits before the handler sees them (fast-path/). */
  serveFastPathFirst(fast: FastPath): void;
}

/** What the listener tracks of one HTTP/2 connection. */
interface SessionState {
  /** Streams open on it. */
  open: number;
  /** A keepalive ping was sent and not answered yet. */
  awaitingPing: boolean;
}

/**
 * One keepalive round: pings every connection that has open streams, and destroys the ones that did
 * not answer the previous round's ping. A peer that vanished without closing (killed machine, cut
 * network, a stopped process) is so cut within two intervals, and the calls on it end as dropped.
 * Idle connections are left to the idle timeout.
 */
function pingAll(sessions: ReadonlyMap<http2.Http2Session, SessionState>): void {
  for (const [session, state] of sessions) {
    if (session.closed || session.destroyed || state.open === 0) {
      state.awaitingPing = false;
      continue;
    }
    if (state.awaitingPing) {
      session.destroy();
      continue;
    }
    state.awaitingPing = true;
    try {
      session.ping((err) => {
        if (!err) state.awaitingPing = false;
      });
    } catch {
      // A session that is closing refuses new pings; it goes away by itself.
    }
  }
}

/** Creates the one-port server. */
export function createOnePortServer(handler: DualHandler, opts: ListenerOptions): OnePortServer {
  let fast: FastPath | undefined;
  const h1 = http.createServer(
    {
      headersTimeout: opts.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      maxHeaderSize: opts.maxHeaderBytes,
      // The checks that enforce headersTimeout/requestTimeout run on this interval.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(opts.headersTimeoutMs / 4))),
      noDelay: true,
    },
    (req, res) => {
      if (fast?.http1(req, res)) return;
      handler(req, res);
    },
  );
  const h2 = http2.createServer(
    {
      maxSessionMemory: 64,
      // Header list bytes as the client may send them; nghttp2 rejects larger blocks.
      maxHeaderListPairs: 256,
      settings: { maxHeaderListSize: opts.maxHeaderBytes },
    },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );

  // The compat layer turns each HTTP/2 stream into a request for `handler` through a 'stream'
  // listener; the fast path goes first and passes on only what it leaves.
  const compat = h2.listeners("stream") as ((...args: unknown[]) => void)[];
  h2.removeAllListeners("stream");
  h2.on(
    "stream",
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      if (fast?.http2(stream, headers)) return;
      for (const listener of compat) listener.call(h2, stream, headers, ...rest);
    },
  );

  const sockets = new Set<net.Socket>();
  const sessions = new Map<http2.Http2Session, SessionState>();
  let closing = false;
  let idleSweep: NodeJS.Timeout | undefined;
  const pinger =
    opts.pingIntervalMs > 0 ? setInterval(() => pingAll(sessions), opts.pingIntervalMs) : undefined;
  pinger?.unref();

  h2.on("session", (session: http2.ServerHttp2Session) => {
    const state: SessionState = { open: 0, awaitingPing: false };
    sessions.set(session, state);
    session.once("close", () => sessions.delete(session));
    session.on("error", () => {});
    let started = false;
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      state.open++;
      stream.on("close", () => state.open--); // fires once; `once` would add a wrapper per stream
      if (!started) {
        started = true;
        session.setTimeout(opts.idleTimeoutMs);
      }
    });
    // Until its first request a connection gets the headers timeout, then the idle timeout; only a
    // connection with no open stream counts as idle (a quiet watch stream must survive). A session
    // nghttp2 has given up on (e.g. after GOAWAY COMPRESSION_ERROR) emits neither 'error' nor
    // 'close', so this timer is also what frees its socket: close gracefully first, destroy if the
    // timer fires again.
    let idleStrikes = 0;
    session.setTimeout(opts.headersTimeoutMs, () => {
      if (!started || session.closed) {
        session.destroy();
        return;
      }
      if (state.open > 0) return;
      if (idleStrikes++ === 0) session.close();
      else session.destroy();
    });
    if (closing) session.close();
  });
  h2.on("sessionError", () => {});
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
    const timedOut = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
    socket.end(
      timedOut
        ? "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        : `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  });

  const route = (socket: net.Socket, isH2: boolean) => {
    if (isH2) h2.emit("connection", socket);
    else h1.emit("connection", socket);
  };

  const sniff = (socket: net.Socket) => {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), opts.headersTimeoutMs);
    const done = (isH2: boolean) => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("end", onEnd);
      // Paused so no byte is emitted between here and the inner server's own listeners; the
      // sniffed bytes go back to the front of the stream for the inner server to read first.
      socket.pause();
      socket.unshift(buffered);
      route(socket, isH2);
      // HTTP/1.1 reads the unshifted bytes through 'data' events, which need a flowing stream.
      // HTTP/2 reads them itself (socket.read() on the next tick) and then takes over the handle;
      // resuming the JS stream would race it for the bytes and corrupt the session.
      if (!isH2) socket.resume();
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, http2Preface.length);
      if (!buffered.subarray(0, n).equals(http2Preface.subarray(0, n))) done(false);
      else if (buffered.length >= http2Preface.length) done(true);
      // Otherwise a prefix of the preface: wait for more bytes.
    };
    const onEnd = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
  };

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setNoDelay(true);
  };

  let outer: net.Server;
  if (opts.tls) {
    const { clientCa, onSecureConnection } = opts.tls;
    const secure = tls.createServer({
      cert: opts.tls.cert,
      key: opts.tls.key,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: opts.headersTimeoutMs,
      // Without requireClientCert a certificate is optional, and one that fails verification still
      // completes the handshake: its calls are refused with a message saying why, which a client
      // can show, where a failed handshake tells it little.
      ...(clientCa
        ? { requestCert: true, ca: clientCa, rejectUnauthorized: opts.tls.requireClientCert === true }
        : {}),
    });
    secure.on("connection", track);
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      onSecureConnection?.(socket);
      route(socket, socket.alpnProtocol === "h2");
    });
    secure.on("tlsClientError", (_err: Error, socket: tls.TLSSocket) => socket.destroy());
    outer = secure;
  } else {
    outer = net.createServer({ noDelay: true }, (socket) => {
      track(socket);
      sniff(socket);
    });
  }

  // An inner server that never listens gets no 'listening' event, and without one Node neither
  // starts the timer that enforces headersTimeout/requestTimeout nor tracks idle connections.
  outer.on("listening", () => {
    h1.emit("listening");
    h2.emit("listening");
  });

  const closeOuter = outer.close.bind(outer);
  const server = outer as OnePortServer;
  server.close = (cb?: (err?: Error) => void) => {
    closing = true;
    clearInterval(pinger);
    closeOuter(cb);
    // Stops the inner timers; both "fail" because they never listened, which is expected.
    h1.close(() => {});
    h1.closeIdleConnections();
    for (const s of sessions.keys()) s.close();
    // Keep-alive connections whose request is still running become idle later; sweep them then.
    idleSweep ??= setInterval(() => {
      h1.closeIdleConnections();
      if (sockets.size === 0 && idleSweep) clearInterval(idleSweep);
    }, 50);
    idleSweep.unref();
    return server;
  };
  server.closeIdleConnections = () => h1.closeIdleConnections();
  server.closeAllConnections = () => {
    for (const s of sessions.keys()) s.destroy();
    for (const s of sockets) s.destroy();
  };
  server.closeHttp2Sessions = () => {
    for (const s of sessions.keys()) s.close();
  };
  Object.defineProperty(server, "openConnections", { get: () => sockets.size });
  server.serveFastPathFirst = (f) => {
    fast = f;
  };
  return server;
}
