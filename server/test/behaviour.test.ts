/**
 * Runs the behaviour suite once per real client against one real gateway on port 0.
 */
import { after, before, describe } from "node:test";
import { behaviourSuite } from "./behaviour-suite.js";
import {
  bufCurlClient,
  connectNodeClients,
  fetchJsonClient,
  grpcJsClient,
  type SuiteClient,
} from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let server: TestServer;
const clients = new Map<string, SuiteClient>();

const names = [
  "grpc-js h2",
  "connect-node gRPC h2",
  "connect-node Connect binary h2",
  "connect-node Connect JSON h1",
  "connect-node Connect binary h1",
  "connect-node gRPC-Web h1",
  "fetch Connect JSON h1",
  "buf curl connect",
  "buf curl grpcweb",
  "buf curl grpc",
];

before(async () => {
  server = await startTestServer();
  const all = [
    grpcJsClient(server.url),
    ...connectNodeClients(server.url),
    fetchJsonClient(server.url),
    bufCurlClient(server.url, "connect"),
    bufCurlClient(server.url, "grpcweb"),
    bufCurlClient(server.url, "grpc"),
  ];
  for (const c of all) clients.set(c.name, c);
});

after(async () => {
  for (const c of clients.values()) await c.close();
  await server.close();
});

for (const name of names) {
  describe(name, () => {
    behaviourSuite(() => {
      const c = clients.get(name);
      if (!c) throw new Error(`no client ${name}`);
      return c;
    });
  });
}
