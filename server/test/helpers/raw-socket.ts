/**
 * Raw TCP access to a test gateway, for input no HTTP client would send: garbage, stalled or split
 * prefaces, half-written headers. Also an HTTP/2 frame header parser, and a stream that splits a
 * client's first bytes into several delayed writes.
 */
import * as net from "node:net";
import { Duplex } from "node:stream";

/** A raw client connection that records every byte it receives. */
export interface RawSocket {
  readonly socket: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /**
   * Resolves when the connection closes, with what was received and how long the wait took; rejects
   * (and destroys the socket) if it is still open after `timeoutMs`.
   */
  waitForClose(timeoutMs: number): Promise<{ received: Buffer; elapsedMs: number }>;
  /** Destroys the socket (safe to call twice). */
  destroy(): void;
}

/** Connects to 127.0.0.1:`port`; resolves once connected. */
export async function openRawSocket(port: number): Promise<RawSocket> {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
  const chunks: Buffer[] = [];
  let closed = false;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    notify();
  });
  // A reset after the server's answer is a normal end here; the test only looks at bytes and close.
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
    notify();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const received = () => Buffer.concat(chunks);

  /** Waits until `check` returns a value (not undefined), or fails after `timeoutMs`. */
  const waitFor = <T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const listener = () => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (value !== undefined) {
          cleanup();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(new Error(`${what} within ${timeoutMs} ms; received ${JSON.stringify(preview(received()))}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      listeners.add(listener);
      listener();
    });

  return {
    socket,
    received,
    waitForClose(timeoutMs) {
      const started = performance.now();
      return waitFor(
        () => (closed ? { received: received(), elapsedMs: performance.now() - started } : undefined),
        timeoutMs,
        "connection was not closed",
      );
    },
    destroy() {
      socket.destroy();
    },
  };
}

/** A printable preview of received bytes for assertion messages. */
export function preview(bytes: Buffer, max = 200): string {
  return bytes.subarray(0, max).toString("latin1");
}

/** HTTP/2 frame types used by the tests (RFC 9113, section 6). */
export const http2FrameType = {
  data: 0x0,
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  goaway: 0x7,
} as const;

/** One HTTP/2 frame header. */
export interface Http2FrameHeader {
  readonly length: number;
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
}

/** Splits a byte stream received from an HTTP/2 server into frame headers (a trailing partial frame is left out). */
export function parseHttp2Frames(bytes: Buffer): Http2FrameHeader[] {
  const frames: Http2FrameHeader[] = [];
  let at = 0;
  while (bytes.length - at >= 9) {
    const length = bytes.readUIntBE(at, 3);
    if (bytes.length - at < 9 + length) break;
    frames.push({
      length,
      type: bytes.readUInt8(at + 3),
      flags: bytes.readUInt8(at + 4),
      streamId: bytes.readUInt32BE(at + 5) & 0x7fffffff,
    });
    at += 9 + length;
  }
  return frames;
}

/**
 * Wraps `socket` in a Duplex that sends the first bytes written to it in pieces: a piece ends at each
 * offset of `splitAt` (ascending), with `gapMs` between pieces; later bytes pass through unchanged.
 * Hand it to `http2.connect(url, { createConnection: () => duplex })` to make a real HTTP/2 client
 * send its preface split across several TCP segments.
 */
export function splitFirstBytes(socket: net.Socket, splitAt: readonly number[], gapMs: number): Duplex {
  let offset = 0;
  const duplex = new Duplex({
    write(chunk: Buffer, _enc, callback) {
      void (async () => {
        let rest = chunk;
        for (const end of splitAt) {
          if (rest.length === 0 || offset >= end) continue;
          const piece = rest.subarray(0, end - offset);
          rest = rest.subarray(piece.length);
          offset += piece.length;
          await writeAll(socket, piece);
          // The gap is the input under test (separate segments), not a wait for the server.
          await new Promise((resolve) => setTimeout(resolve, gapMs));
        }
        if (rest.length > 0) {
          offset += rest.length;
          await writeAll(socket, rest);
        }
      })().then(() => callback(), callback);
    },
    final(callback) {
      socket.end(callback);
    },
    read() {
      socket.resume();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}

function writeAll(socket: net.Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(bytes, (err) => (err ? reject(err) : resolve()));
  });
}
