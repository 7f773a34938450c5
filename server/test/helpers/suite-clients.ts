/**
 * One interface over every real client the behaviour suite runs with: @grpc/grpc-js, connect-node
 * (gRPC, Connect JSON/binary, gRPC-Web over HTTP/1.1 or HTTP/2), plain fetch with Connect JSON, and
 * `buf curl` through server reflection. Requests and responses are proto3 JSON objects, errors carry
 * Connect's code names (`not_found`), so one suite can assert the same thing for each client.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  type DescMethod,
  type DescService,
  fromBinary,
  fromJson,
  type JsonObject,
  type JsonValue,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { codeFromString, codeToString } from "@connectrpc/connect/protocol-connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";

/** An RPC that failed, with Connect's code name. */
export class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly raw?: unknown,
  ) {
    super(`${code}: ${message}`);
  }
}

/** Options of one call. */
export interface CallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A client of the gateway, speaking one protocol. */
export interface SuiteClient {
  readonly name: string;
  /** Whether bidirectional streams work over this client's transport. */
  readonly bidi: boolean;
  unary(service: DescService, method: string, req: JsonObject, opts?: CallOptions): Promise<JsonObject>;
  serverStream(
    service: DescService,
    method: string,
    req: JsonObject,
    opts?: CallOptions,
  ): AsyncIterable<JsonObject>;
  /** Sends every request, half-closes, and returns every response. */
  bidiStream(
    service: DescService,
    method: string,
    reqs: readonly JsonObject[],
    opts?: CallOptions,
  ): Promise<JsonObject[]>;
  close(): Promise<void>;
}

function methodOf(service: DescService, name: string): DescMethod {
  const m = service.methods.find((x) => x.name === name);
  if (!m) throw new Error(`${service.typeName} has no method ${name}`);
  return m;
}

function callSignal(opts: CallOptions | undefined): AbortSignal | undefined {
  return opts?.signal;
}

function toCallError(err: unknown): CallError {
  const ce = ConnectError.from(err);
  return new CallError(codeToString(ce.code), ce.rawMessage, ce);
}

/** connect-node over the given transport. */
export function connectNodeClient(
  name: string,
  transport: Transport,
  bidi: boolean,
  onClose?: () => void,
): SuiteClient {
  const call = (service: DescService) =>
    createClient(service, transport) as unknown as Record<string, (...a: unknown[]) => unknown>;
  return {
    name,
    bidi,
    async unary(service, method, req, opts) {
      const m = methodOf(service, method);
      try {
        const res = await (call(service)[m.localName] as (r: unknown, o: unknown) => Promise<never>)(
          fromJson(m.input, req),
          { timeoutMs: opts?.timeoutMs, signal: callSignal(opts) },
        );
        return toJson(m.output, res) as JsonObject;
      } catch (err) {
        throw toCallError(err);
      }
    },
    async *serverStream(service, method, req, opts) {
      const m = methodOf(service, method);
      try {
        const it = (call(service)[m.localName] as (r: unknown, o: unknown) => AsyncIterable<never>)(
          fromJson(m.input, req),
          {
            timeoutMs: opts?.timeoutMs,
            signal: callSignal(opts),
          },
        );
        for await (const res of it) yield toJson(m.output, res) as JsonObject;
      } catch (err) {
        throw toCallError(err);
      }
    },
    async bidiStream(service, method, reqs, opts) {
      const m = methodOf(service, method);
      async function* input() {
        for (const r of reqs) yield fromJson(m.input, r);
      }
      const out: JsonObject[] = [];
      try {
        const it = (call(service)[m.localName] as (r: unknown, o: unknown) => AsyncIterable<never>)(input(), {
          timeoutMs: opts?.timeoutMs,
          signal: callSignal(opts),
        });
        for await (const res of it) out.push(toJson(m.output, res) as JsonObject);
      } catch (err) {
        throw toCallError(err);
      }
      return out;
    },
    async close() {
      onClose?.();
    },
  };
}

/** A connect interceptor that sends `Authorization: Bearer <token>`. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** The connect-node clients of the suite, each on its own transport (with a token, when given). */
export function connectNodeClients(
  baseUrl: string,
  nodeOptions: { ca?: string | Buffer; token?: string } = {},
): SuiteClient[] {
  const interceptors = nodeOptions.token ? [bearer(nodeOptions.token)] : [];
  const h2 = () => new Http2SessionManager(baseUrl, {}, nodeOptions.ca ? { ca: nodeOptions.ca } : undefined);
  const grpcSm = h2();
  const connectSm = h2();
  const h1Options = nodeOptions.ca ? { nodeOptions: { ca: nodeOptions.ca } } : {};
  return [
    connectNodeClient(
      "connect-node gRPC h2",
      createGrpcTransport({ baseUrl, sessionManager: grpcSm, interceptors }),
      true,
      () => grpcSm.abort(),
    ),
    connectNodeClient(
      "connect-node Connect binary h2",
      createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager: connectSm,
        interceptors,
      }),
      true,
      () => connectSm.abort(),
    ),
    connectNodeClient(
      "connect-node Connect JSON h1",
      createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors, ...h1Options }),
      false,
    ),
    connectNodeClient(
      "connect-node Connect binary h1",
      createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        useBinaryFormat: true,
        interceptors,
        ...h1Options,
      }),
      false,
    ),
    connectNodeClient(
      "connect-node gRPC-Web h1",
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors, ...h1Options }),
      false,
    ),
  ];
}

/**
 * @grpc/grpc-js over h2c (or TLS with `ca`, presenting the client certificate `identity` when
 * given), with protobuf-es doing the encoding.
 */
export function grpcJsClient(
  baseUrl: string,
  ca?: Buffer,
  token?: string,
  identity?: { readonly key: Buffer; readonly cert: Buffer },
): SuiteClient {
  const url = new URL(baseUrl);
  const creds = ca
    ? grpc.credentials.createSsl(ca, identity?.key ?? null, identity?.cert ?? null)
    : grpc.credentials.createInsecure();
  const channelOptions: grpc.ChannelOptions = ca ? { "grpc.ssl_target_name_override": "localhost" } : {};
  const client = new grpc.Client(`${url.hostname}:${url.port}`, creds, channelOptions);
  const path = (service: DescService, m: DescMethod) => `/${service.typeName}/${m.name}`;
  const serialize = (m: DescMethod) => (v: unknown) => Buffer.from(toBinary(m.input, v as never));
  const deserialize = (m: DescMethod) => (b: Buffer) => fromBinary(m.output, b);
  const meta = () => {
    const m = new grpc.Metadata();
    if (token) m.set("authorization", `Bearer ${token}`);
    return m;
  };
  const opts = (o?: CallOptions): grpc.CallOptions =>
    o?.timeoutMs ? { deadline: Date.now() + o.timeoutMs } : {};
  const err = (e: grpc.ServiceError) => new CallError(codeToString(e.code as number as Code), e.details, e);
  return {
    name: "grpc-js h2",
    bidi: true,
    unary(service, method, req, o) {
      const m = methodOf(service, method);
      return new Promise((resolve, reject) => {
        const call = client.makeUnaryRequest(
          path(service, m),
          serialize(m),
          deserialize(m),
          fromJson(m.input, req),
          meta(),
          opts(o),
          (e, res) => (e ? reject(err(e)) : resolve(toJson(m.output, res as never) as JsonObject)),
        );
        o?.signal?.addEventListener("abort", () => call.cancel());
      });
    },
    async *serverStream(service, method, req, o) {
      const m = methodOf(service, method);
      const call = client.makeServerStreamRequest(
        path(service, m),
        serialize(m),
        deserialize(m),
        fromJson(m.input, req),
        meta(),
        opts(o),
      );
      o?.signal?.addEventListener("abort", () => call.cancel());
      try {
        for await (const res of call) yield toJson(m.output, res as never) as JsonObject;
      } catch (e) {
        throw err(e as grpc.ServiceError);
      }
    },
    async bidiStream(service, method, reqs, o) {
      const m = methodOf(service, method);
      const call = client.makeBidiStreamRequest(
        path(service, m),
        serialize(m),
        deserialize(m),
        meta(),
        opts(o),
      );
      for (const r of reqs) call.write(fromJson(m.input, r));
      call.end();
      const out: JsonObject[] = [];
      try {
        for await (const res of call) out.push(toJson(m.output, res as never) as JsonObject);
      } catch (e) {
        throw err(e as grpc.ServiceError);
      }
      return out;
    },
    async close() {
      client.close();
    },
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** Plain fetch over HTTP/1.1 with Connect JSON, as a script or a browser would call the API. */
export function fetchJsonClient(baseUrl: string, token?: string): SuiteClient {
  const headers = (opts?: CallOptions, streaming = false): Record<string, string> => ({
    "content-type": streaming ? "application/connect+json" : "application/json",
    "connect-protocol-version": "1",
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(opts?.timeoutMs ? { "connect-timeout-ms": String(opts.timeoutMs) } : {}),
  });
  return {
    name: "fetch Connect JSON h1",
    bidi: false,
    async unary(service, method, req, opts) {
      const res = await fetch(`${baseUrl}/${service.typeName}/${method}`, {
        method: "POST",
        headers: headers(opts),
        body: JSON.stringify(req),
        signal: opts?.signal,
      });
      const body = (await res.json()) as JsonObject;
      if (res.status !== 200) throw new CallError(String(body.code), String(body.message), body);
      return body;
    },
    async *serverStream(service, method, req, opts) {
      const res = await fetch(`${baseUrl}/${service.typeName}/${method}`, {
        method: "POST",
        headers: headers(opts, true),
        body: envelope(0, enc.encode(JSON.stringify(req))),
        signal: opts?.signal,
      });
      if (res.status !== 200) {
        const body = (await res.json()) as JsonObject;
        throw new CallError(String(body.code), String(body.message), body);
      }
      if (!res.body) throw new Error("no body");
      let buf = new Uint8Array(0);
      for await (const chunk of res.body) {
        const next = new Uint8Array(buf.length + chunk.length);
        next.set(buf);
        next.set(chunk, buf.length);
        buf = next;
        while (buf.length >= 5) {
          const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
          if (buf.length < 5 + len) break;
          const flags = buf[0] ?? 0;
          const json = JSON.parse(dec.decode(buf.subarray(5, 5 + len))) as JsonObject;
          buf = buf.slice(5 + len);
          if (flags & 0b10) {
            const error = json.error as JsonObject | undefined;
            if (error) throw new CallError(String(error.code), String(error.message), error);
            return;
          }
          yield json;
        }
      }
      throw new CallError("unknown", "stream ended without an end-stream message");
    },
    async bidiStream() {
      throw new Error("fetch over HTTP/1.1 cannot do bidirectional streams");
    },
    async close() {},
  };
}

const bufBin = fileURLToPath(new URL("../../../node_modules/.bin/buf", import.meta.url));

/** Splits concatenated pretty-printed JSON documents, as `buf curl` prints them. */
export function splitJsonDocuments(text: string): JsonObject[] {
  const docs: JsonObject[] = [];
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "}") {
      depth--;
      if (depth === 0 && start >= 0) {
        docs.push(JSON.parse(text.slice(start, i + 1)) as JsonObject);
        start = -1;
      }
    }
  }
  return docs;
}

/** `buf curl` (from the @bufbuild/buf package), schema from server reflection. */
export function bufCurlClient(
  baseUrl: string,
  protocol: "connect" | "grpcweb" | "grpc",
  cacert?: string,
  token?: string,
): SuiteClient {
  const run = (service: DescService, method: string, data: string, opts?: CallOptions) => {
    const args = ["curl", "--protocol", protocol, "--data", "@-"];
    if (token) args.push("--header", `Authorization: Bearer ${token}`);
    if (protocol === "grpc") args.push("--http2-prior-knowledge");
    if (cacert) args.push("--cacert", cacert);
    // buf curl sends its --timeout as the RPC's deadline (Connect-Timeout-Ms / Grpc-Timeout).
    if (opts?.timeoutMs) args.push("--timeout", `${opts.timeoutMs}ms`);
    args.push(`${baseUrl}/${service.typeName}/${method}`);
    const child = spawn(bufBin, args, { stdio: ["pipe", "pipe", "pipe"], signal: opts?.signal });
    child.stdin.end(data);
    return child;
  };
  const finish = (child: ReturnType<typeof run>, onStdout?: (text: string) => void) =>
    new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        onStdout?.(stdout);
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ stdout, stderr, code }));
    });
  const failure = (stderr: string): CallError => {
    const doc = splitJsonDocuments(stderr)[0];
    if (doc && typeof doc.code === "string") return new CallError(doc.code, String(doc.message ?? ""), doc);
    return new CallError("unknown", stderr.trim());
  };
  return {
    name: `buf curl ${protocol}`,
    bidi: true,
    async unary(service, method, req, opts) {
      const r = await finish(run(service, method, JSON.stringify(req), opts));
      if (r.code !== 0) throw failure(r.stderr);
      const doc = splitJsonDocuments(r.stdout)[0];
      return doc ?? {};
    },
    async *serverStream(service, method, req, opts) {
      const child = run(service, method, JSON.stringify(req), opts);
      const queue: JsonObject[] = [];
      let seen = 0;
      let wake: (() => void) | undefined;
      let result: { stdout: string; stderr: string; code: number | null } | undefined;
      finish(child, (text) => {
        const docs = splitJsonDocuments(text);
        for (const d of docs.slice(seen)) queue.push(d);
        seen = docs.length;
        wake?.();
      }).then((r) => {
        result = r;
        wake?.();
      });
      try {
        for (;;) {
          const next = queue.shift();
          if (next) {
            yield next;
            continue;
          }
          if (result) {
            if (result.code !== 0) throw failure(result.stderr);
            return;
          }
          await new Promise<void>((r) => {
            wake = r;
          });
        }
      } finally {
        if (!result) child.kill();
      }
    },
    async bidiStream(service, method, reqs, opts) {
      const r = await finish(run(service, method, reqs.map((x) => JSON.stringify(x)).join("\n"), opts));
      if (r.code !== 0) throw failure(r.stderr);
      return splitJsonDocuments(r.stdout);
    },
    async close() {},
  };
}

/** Reads a JSON field as a string (proto3 JSON renders 64-bit integers as strings). */
export function str(v: JsonValue | undefined): string {
  return v === undefined || v === null ? "" : String(v);
}

export { Code, codeFromString };
