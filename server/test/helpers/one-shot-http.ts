/**
 * Single requests with full control over headers and body, for what the RPC clients refuse to
 * send: wrong content types, truncated frames, unknown paths. Each request uses its own connection
 * (closed afterwards, so the leak check stays quiet) and fails instead of hanging after `timeoutMs`.
 */
import * as http from "node:http";
import * as http2 from "node:http2";

/** What came back. */
export interface OneShotResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** HTTP trailers (for gRPC: grpc-status, grpc-message), empty when none were sent. */
  readonly trailers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** Sends one POST over HTTP/1.1 on a fresh connection (no keep-alive). */
export function http1Post(
  url: string,
  path: string,
  headers: Readonly<Record<string, string>>,
  body: Uint8Array | string,
  timeoutMs = 5000,
): Promise<OneShotResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, url),
      { method: "POST", agent: false, headers: { connection: "close", ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            body: Buffer.concat(chunks),
          });
        });
        res.on("error", fail);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`HTTP/1.1 POST ${path} got no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    function fail(err: Error) {
      clearTimeout(timer);
      req.destroy();
      reject(err);
    }
    req.on("error", fail);
    req.end(body);
  });
}

/** Sends one POST over cleartext HTTP/2 (prior knowledge) on a fresh session, closed afterwards. */
export function http2Post(
  url: string,
  path: string,
  headers: Readonly<Record<string, string>>,
  body: Uint8Array | string,
  timeoutMs = 5000,
): Promise<OneShotResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`HTTP/2 POST ${path} got no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    };
    session.on("error", fail);
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", fail);
    stream.on("end", () => {
      clearTimeout(timer);
      session.close();
      resolve({ status, headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    stream.end(body);
  });
}

/** The gRPC status of a response: from the trailers, or from the headers of a trailers-only response. */
export function grpcStatusOf(res: OneShotResponse): string | undefined {
  const value = res.trailers["grpc-status"] ?? res.headers["grpc-status"];
  return Array.isArray(value) ? value[0] : value;
}

/** The decoded grpc-message of a response, if any. */
export function grpcMessageOf(res: OneShotResponse): string | undefined {
  const value = res.trailers["grpc-message"] ?? res.headers["grpc-message"];
  const raw = Array.isArray(value) ? value[0] : value;
  return raw === undefined ? undefined : decodeURIComponent(raw);
}

/** Frames `message` as one uncompressed gRPC / gRPC-Web length-prefixed message. */
export function grpcEnvelope(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** Splits a gRPC body into its messages (flags byte and payload of each). */
export function parseGrpcEnvelopes(body: Buffer): { flags: number; message: Buffer }[] {
  const out: { flags: number; message: Buffer }[] = [];
  let at = 0;
  while (body.length - at >= 5) {
    const flags = body.readUInt8(at);
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) throw new Error(`incomplete envelope at byte ${at}`);
    out.push({ flags, message: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  if (at !== body.length) throw new Error(`${body.length - at} trailing bytes after the last envelope`);
  return out;
}
