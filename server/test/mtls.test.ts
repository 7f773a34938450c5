/**
 * Mutual TLS with real certificates made for the run (helpers/test-pki.ts): a trusted CA, a second
 * CA the gateway does not trust, and client certificates that are mapped, unmapped or expired.
 * Every case runs with grpc-js (native gRPC), connect-node (gRPC over h2 and Connect JSON over
 * HTTP/1.1) and curl, with the fast path on and off, so both ways a call is served apply the same
 * decisions. With --require-client-cert the handshake itself refuses a client without a valid
 * certificate.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { JsonObject } from "@bufbuild/protobuf";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { openLimits, refused } from "./helpers/auth-clients.js";
import {
  bearer,
  CallError,
  connectNodeClient,
  grpcJsClient,
  type SuiteClient,
} from "./helpers/suite-clients.js";
import { createTestCa, type IssuedCert, type TestCa } from "./helpers/test-pki.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);

let ca: TestCa;
let serverCert: IssuedCert;
let reader: IssuedCert;
let core: IssuedCert;
let stranger: IssuedCert;
let untrusted: IssuedCert;
let expired: IssuedCert;

before(() => {
  ca = createTestCa("spage-test-ca");
  serverCert = ca.issue("localhost", { san: ["DNS:localhost", "IP:127.0.0.1"] });
  reader = ca.issue("reader-1");
  core = ca.issue("spage-core", { san: ["DNS:core.example.com"] });
  stranger = ca.issue("stranger");
  untrusted = createTestCa("other-ca").issue("reader-2");
  expired = ca.issue("reader-3", { startDate: "20200101000000Z", endDate: "20200102000000Z" });
});

/** Client certificates by scope: `reader-*` may read, the core's DNS name may execute. */
const scopes = "cn:reader-*=tasks:read; dns:core.example.com=execution,tasks:read";

/** Flags of a gateway with mutual TLS on top of `openLimits`. */
const mtlsFlags = (...extra: string[]) => [
  ...openLimits,
  "--tls-cert",
  serverCert.certPath,
  "--tls-key",
  serverCert.keyPath,
  "--tls-client-ca",
  ca.certPath,
  "--client-cert-scopes",
  scopes,
  ...extra,
];

type ClientKind = "grpc-js" | "connect-node gRPC h2" | "connect-node Connect JSON h1" | "curl Connect JSON";
const kinds: readonly ClientKind[] = [
  "grpc-js",
  "connect-node gRPC h2",
  "connect-node Connect JSON h1",
  "curl Connect JSON",
];

/** A client of `kind` trusting the test CA, presenting `identity` and sending `token` when given. */
function clientOf(kind: ClientKind, url: string, identity?: IssuedCert, token?: string): SuiteClient {
  const tlsOptions = { ca: ca.cert, ...(identity ? { key: identity.key, cert: identity.cert } : {}) };
  const interceptors = token ? [bearer(token)] : [];
  switch (kind) {
    case "grpc-js":
      return grpcJsClient(url, ca.cert, token, identity);
    case "connect-node gRPC h2": {
      const sessions = new Http2SessionManager(url, {}, tlsOptions);
      return connectNodeClient(
        kind,
        createGrpcTransport({ baseUrl: url, sessionManager: sessions, interceptors }),
        true,
        () => sessions.abort(),
      );
    }
    case "connect-node Connect JSON h1":
      return connectNodeClient(
        kind,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: tlsOptions, interceptors }),
        false,
      );
    case "curl Connect JSON":
      return curlClient(url, identity, token);
  }
}

/** Unary Connect JSON calls with curl; a failed handshake rejects with curl's exit code. */
function curlClient(url: string, identity?: IssuedCert, token?: string): SuiteClient {
  const unary = async (service: { typeName: string }, method: string, req: JsonObject) => {
    const args = ["-sS", "--http1.1", "--cacert", ca.certPath, "-X", "POST"];
    if (identity) args.push("--cert", identity.certPath, "--key", identity.keyPath);
    if (token) args.push("-H", `authorization: Bearer ${token}`);
    args.push("-H", "content-type: application/json", "-d", JSON.stringify(req));
    args.push(`${url}/${service.typeName}/${method}`);
    const { stdout } = await run("curl", args);
    const body = JSON.parse(stdout) as JsonObject;
    if (typeof body.code === "string") {
      throw new CallError(body.code, String(body.message));
    }
    return body;
  };
  const none = () => {
    throw new Error("curl client: unary calls only");
  };
  return {
    name: "curl Connect JSON",
    bidi: false,
    unary: (service, method, req) => unary(service, method, req),
    serverStream: none,
    bidiStream: none,
    close: async () => {},
  };
}

for (const fastPath of ["on", "off"]) {
  describe(`mutual TLS, certificate optional (fast path ${fastPath})`, () => {
    let server: TestServer;
    const clients: SuiteClient[] = [];
    const client = (kind: ClientKind, identity?: IssuedCert, token?: string) => {
      const c = clientOf(kind, server.url, identity, token);
      clients.push(c);
      return c;
    };
    before(async () => {
      server = await startTestServer(mtlsFlags("--fast-path", fastPath));
    });
    after(async () => {
      for (const c of clients) await c.close();
      await server.close();
    });

    for (const kind of kinds) {
      it(`${kind}: a mapped certificate gets its entry's scopes and no others`, async () => {
        const c = client(kind, reader);
        const res = await c.unary(SpageAPI, "ListTasks", {});
        assert.ok(Array.isArray(res.tasks) || res.tasks === undefined);
        await refused(
          c.unary(SpageAPI, "SubmitTask", { type: "playbook", payload: { playbook: "a.yml" } }),
          "permission_denied",
          /SubmitTask needs scope "tasks:write"; these credentials have tasks:read/,
        );
      });

      it(`${kind}: a certificate matched by a DNS name may execute`, async () => {
        const c = client(kind, core);
        const res = await c.unary(SpageExecution, "GetMetrics", {});
        assert.equal(typeof res, "object");
      });

      it(`${kind}: without a certificate, Bearer keys and anonymous loopback cores work as before`, async () => {
        const anon = client(kind);
        await refused(
          anon.unary(SpageAPI, "ListTasks", {}),
          "unauthenticated",
          /missing credentials: .*, or connect with a client certificate \(mutual TLS\)/,
        );
        const reg = await anon.unary(SpageExecution, "RegisterTask", {
          taskId: `core-run-${kind.replace(/\W+/g, "-")}-${fastPath}`,
          playbook: "site.yml",
        });
        assert.equal(reg.success, true);
        const admin = client(kind, undefined, server.adminKey);
        await admin.unary(SpageAPI, "ListTasks", {});
      });

      it(`${kind}: a certificate from an untrusted CA is refused, never taken for anonymous`, async () => {
        const c = client(kind, untrusted);
        const why =
          /client certificate CN=reader-2 refused: it is not signed by a CA this gateway trusts \(--tls-client-ca\) \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/;
        await refused(c.unary(SpageAPI, "ListTasks", {}), "unauthenticated", why);
        await refused(
          c.unary(SpageExecution, "RegisterTask", { taskId: "untrusted-core", playbook: "x.yml" }),
          "unauthenticated",
          why,
        );
        // A Bearer key does not rescue a connection whose certificate is bad.
        const withKey = client(kind, untrusted, server.adminKey);
        await refused(withKey.unary(SpageAPI, "ListTasks", {}), "unauthenticated", why);
        // Public methods stay public.
        await c.unary(SpageAPI, "HealthCheck", {});
      });

      it(`${kind}: an expired certificate is refused`, async () => {
        const c = client(kind, expired);
        await refused(
          c.unary(SpageAPI, "ListTasks", {}),
          "unauthenticated",
          /client certificate CN=reader-3 refused: certificate has expired \(CERT_HAS_EXPIRED\)/,
        );
      });

      it(`${kind}: a trusted certificate no entry matches is refused; a Bearer key wins over it`, async () => {
        const c = client(kind, stranger);
        await refused(
          c.unary(SpageAPI, "ListTasks", {}),
          "unauthenticated",
          /client certificate CN=stranger matches no --client-cert-scopes entry/,
        );
        const withKey = client(kind, reader, server.adminKey);
        const res = await withKey.unary(SpageAPI, "SubmitTask", {
          type: "playbook",
          payload: { playbook: "b.yml" },
        });
        assert.ok(res.taskId);
        const strangerWithKey = client(kind, stranger, server.adminKey);
        await strangerWithKey.unary(SpageAPI, "ListTasks", {});
      });
    }

    for (const kind of ["grpc-js", "connect-node gRPC h2"] as const) {
      it(`${kind}: a server stream runs as the certificate too; an untrusted one is refused`, async () => {
        const taskId = `watched-${kind.replace(/\W+/g, "-")}-${fastPath}`;
        const admin = client(kind, undefined, server.adminKey);
        await admin.unary(SpageAPI, "SubmitTask", { taskId, type: "playbook" });
        const seen: string[] = [];
        await refused(
          (async () => {
            const stream = client(kind, reader).serverStream(
              SpageAPI,
              "WatchEvents",
              { taskId },
              { timeoutMs: 1500 },
            );
            for await (const ev of stream) seen.push(String(ev.type));
          })(),
          "deadline_exceeded",
          /./,
        );
        assert.deepEqual(seen, ["task.submitted"]);
        await refused(
          (async () => {
            const stream = client(kind, untrusted).serverStream(
              SpageAPI,
              "WatchEvents",
              { taskId },
              { timeoutMs: 1500 },
            );
            for await (const _ of stream) assert.fail("an event reached an untrusted certificate");
          })(),
          "unauthenticated",
          /client certificate CN=reader-2 refused/,
        );
      });
    }

    it("audits a certificate principal by its name and fingerprint", async () => {
      const admin = client("connect-node gRPC h2", undefined, server.adminKey);
      const res = await admin.unary(SpageAPI, "ListAuditEvents", { limit: 500 });
      const events = (res.events as JsonObject[] | undefined) ?? [];
      const denied = events.find((e) => e.principal === "cert:cn:reader-1" && e.code === "permission_denied");
      assert.ok(denied, `no refused call of cert:cn:reader-1 in ${JSON.stringify(events.slice(0, 5))}`);
      assert.match(String(denied.detail), /client certificate sha256 [0-9A-F]{2}(:[0-9A-F]{2}){31}/);
    });
  });
}

describe("mutual TLS, certificate required", () => {
  let server: TestServer;
  const clients: SuiteClient[] = [];
  before(async () => {
    server = await startTestServer(mtlsFlags("--require-client-cert"));
  });
  after(async () => {
    for (const c of clients) await c.close();
    await server.close();
  });

  for (const kind of kinds) {
    it(`${kind}: the handshake refuses a client without a certificate, or with a bad one`, async () => {
      for (const identity of [undefined, untrusted, expired]) {
        const c = clientOf(kind, server.url, identity);
        clients.push(c);
        // A refused handshake is no RPC answer, even to a public method: grpc-js reports the
        // connection failing (unavailable); connect-node and curl report the TLS alert or, when
        // they read the gateway's close before it (TLS 1.3 clients send the request before the
        // server has checked their certificate), the closed connection.
        const err = (await c.unary(SpageAPI, "HealthCheck", {}).then(
          () => assert.fail(`${kind} got an answer with ${identity ? "a bad" : "no"} certificate`),
          (e: unknown) => e,
        )) as { code?: unknown; message?: string };
        if (kind === "grpc-js") assert.equal(err.code, "unavailable", `${kind}: ${err.message}`);
        else {
          assert.match(
            String(err.message),
            /alert (certificate required|unknown ca|certificate expired)|socket hang up|reset|stream closed|Empty reply/i,
            kind,
          );
        }
      }
    });

    it(`${kind}: a valid mapped certificate is served`, async () => {
      const c = clientOf(kind, server.url, reader);
      clients.push(c);
      await c.unary(SpageAPI, "ListTasks", {});
    });
  }
});
