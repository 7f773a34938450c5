/**
 * TLS mode: the same port serves TLS with ALPN h2 and http/1.1; the behaviour suite's smoke runs
 * over it with each client that can trust a custom certificate.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import * as tls from "node:tls";
import { behaviourSuite } from "./behaviour-suite.js";
import { createSelfSigned, type SelfSigned } from "./helpers/self-signed.js";
import {
  bufCurlClient,
  connectNodeClients,
  grpcJsClient,
  type SuiteClient,
} from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let server: TestServer;
let cert: SelfSigned;
const clients = new Map<string, SuiteClient>();
const names = [
  "grpc-js h2",
  "connect-node gRPC h2",
  "connect-node Connect binary h2",
  "connect-node Connect JSON h1",
  "connect-node gRPC-Web h1",
  "buf curl connect",
  "buf curl grpc",
];

before(async () => {
  cert = createSelfSigned();
  server = await startTestServer(["--tls-cert", cert.certPath, "--tls-key", cert.keyPath]);
  for (const c of [
    grpcJsClient(server.url, cert.cert),
    ...connectNodeClients(server.url, { ca: cert.cert }),
    bufCurlClient(server.url, "connect", cert.certPath),
    bufCurlClient(server.url, "grpc", cert.certPath),
  ]) {
    clients.set(c.name, c);
  }
});

after(async () => {
  for (const c of clients.values()) await c.close();
  await server.close();
});

describe("TLS listener", () => {
  it("negotiates h2 and http/1.1 by ALPN", async () => {
    for (const [offer, want] of [
      [["h2", "http/1.1"], "h2"],
      [["http/1.1"], "http/1.1"],
    ] as const) {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: server.port,
        ca: cert.cert,
        ALPNProtocols: [...offer],
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", resolve);
        socket.once("error", reject);
      });
      assert.equal(socket.alpnProtocol, want);
      socket.destroy();
    }
  });

  it("serves HTTP/2 over TLS to a plain node:http2 client", async () => {
    const session = http2.connect(server.url, { ca: cert.cert });
    try {
      const req = session.request({ ":method": "GET", ":path": "/healthz" });
      req.end();
      const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
        let status = 0;
        let body = "";
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.on("data", (d: Buffer) => {
          body += d.toString();
        });
        req.on("end", () => resolve([status, body]));
        req.on("error", reject);
      });
      assert.equal(status, 200);
      assert.match(body, /"status"/);
    } finally {
      session.close();
    }
  });
});

for (const name of names) {
  describe(`TLS ${name}`, () => {
    behaviourSuite(
      () => {
        const c = clients.get(name);
        if (!c) throw new Error(`no client ${name}`);
        return c;
      },
      { smoke: true },
    );
  });
}
