/**
 * Shared pieces of the auth tests (server/test/auth-*.test.ts): a gateway with `--auth on` per
 * describe block, clients of every protocol with or without a bearer credential, API keys and
 * session tokens made through the API, and the assertions those tests share.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { rejectsWith } from "../behaviour-suite.js";
import {
  bearer,
  type CallError,
  connectNodeClient,
  fetchJsonClient,
  grpcJsClient,
  type SuiteClient,
  str,
} from "./suite-clients.js";
import { startTestServer, type TestServer } from "./test-server.js";

/** The clients every credential check runs with. */
export const clientNames = [
  "grpc-js h2",
  "connect-node Connect JSON h1",
  "connect-node gRPC-Web h1",
  "connect-node gRPC h2",
  "fetch Connect JSON h1",
] as const;

/** One of {@link clientNames}. */
export type ClientName = (typeof clientNames)[number];

/** Limits high enough that only the tests about limits ever meet one. */
export const generousRates =
  "tasks:read=100000,tasks:write=100000,tasks:cancel=100000,agent=100000,execution=100000,admin=100000,streams=100000";

/** Flags of a gateway with auth on where nothing is limited. */
export const openLimits = ["--auth", "on", "--auth-failures-per-minute", "0", "--rate-limits", generousRates];

/** A client of `name` on `url`, sending `Authorization: Bearer <token>` when a token is given. */
export function makeClient(name: ClientName, url: string, token?: string): SuiteClient {
  const interceptors = token === undefined ? [] : [bearer(token)];
  switch (name) {
    case "grpc-js h2":
      return grpcJsClient(url, undefined, token);
    case "fetch Connect JSON h1":
      return fetchJsonClient(url, token);
    case "connect-node Connect JSON h1":
      return connectNodeClient(
        name,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
        false,
      );
    case "connect-node gRPC-Web h1":
      return connectNodeClient(
        name,
        createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
        false,
      );
    case "connect-node gRPC h2": {
      const sm = new Http2SessionManager(url);
      return connectNodeClient(
        name,
        createGrpcTransport({ baseUrl: url, sessionManager: sm, interceptors }),
        true,
        () => sm.abort(),
      );
    }
  }
}

/** A gateway for one describe block, and every client opened on it (closed before the gateway). */
export interface Harness {
  readonly server: TestServer;
  /** A client (connect-node gRPC h2 unless told) with `token`, or without credentials. */
  client(token?: string, name?: ClientName): SuiteClient;
  /** A client holding the test's admin key. */
  readonly admin: SuiteClient;
}

/** Starts a gateway with `args` before the enclosing describe block's tests and closes it after. */
export function useGateway(args: readonly string[]): Harness {
  let server: TestServer | undefined;
  let admin: SuiteClient | undefined;
  const clients: SuiteClient[] = [];
  const h: Harness = {
    get server() {
      if (!server) throw new Error("the gateway is not started");
      return server;
    },
    client(token, name = "connect-node gRPC h2") {
      const c = makeClient(name, h.server.url, token);
      clients.push(c);
      return c;
    },
    get admin() {
      admin ??= h.client(h.server.adminKey);
      return admin;
    },
  };
  before(async () => {
    server = await startTestServer(args);
  });
  after(async () => {
    for (const c of clients) await c.close();
    await server?.close();
  });
  return h;
}

/** A random 32-byte secret in base64url, the shape of a credential's secret part. */
export const secret = (): string => randomBytes(32).toString("base64url");

/** `bytes` random bytes as lowercase hex, the shape of a credential's id part. */
export const hex = (bytes: number): string => randomBytes(bytes).toString("hex");

/** The id part of an API key or session token (`spk_<id>_<secret>`). */
export const idOf = (credential: string): string => credential.split("_")[1] ?? "";

let names = 0;

/** Creates an API key through CreateApiKey as `admin`; returns its id and full key. */
export async function createKey(
  admin: SuiteClient,
  scopes: string[],
): Promise<{ id: string; apiKey: string }> {
  names++;
  const res = await admin.unary(SpageAPI, "CreateApiKey", { name: `auth-test-${names}`, scopes });
  const key = res.key as JsonObject;
  assert.deepEqual(key.scopes, scopes);
  return { id: str(key.id), apiKey: str(res.apiKey) };
}

/** Exchanges an API key for a session token through Authenticate (a public method). */
export async function authenticate(
  c: SuiteClient,
  apiKey: string,
  clientId = "auth-test",
): Promise<JsonObject> {
  const res = await c.unary(SpageAPI, "Authenticate", { apiKey, clientId });
  assert.equal(res.success, true);
  return res;
}

/** Submits a task as `c` and returns its generated id. */
export async function submit(c: SuiteClient): Promise<string> {
  const res = await c.unary(SpageAPI, "SubmitTask", { type: "playbook", payload: { playbook: "site.yml" } });
  const taskId = str(res.taskId);
  assert.notEqual(taskId, "");
  return taskId;
}

/** Expects `p` to fail with `code` and a message matching `message`. */
export async function refused(p: Promise<unknown>, code: string, message: RegExp): Promise<CallError> {
  const err = await rejectsWith(p, code);
  assert.match(err.message, message);
  return err;
}

/** Polls `check` every 20 ms until it returns true or `ms` pass (then fails with `what`). */
export async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
