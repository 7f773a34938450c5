/**
 * The behaviour suite once per real client against one real gateway on port 0. Each gateway setup
 * runs from a test file of its own (behaviour*.test.ts), so no file runs long enough to meet the
 * per-file timeout on a slow machine.
 */
import { after, before, describe } from "node:test";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { behaviourSuite } from "./behaviour-suite.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import {
  bufCurlClient,
  connectNodeClients,
  fetchJsonClient,
  grpcJsClient,
  type SuiteClient,
} from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

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

/** The whole suite for every client against one gateway started with `flags`. */
export function behaviourOfEveryClient(label: string, flags: readonly string[], onPostgres = false): void {
  describe(label, () => {
    let server: TestServer;
    let schema = "";
    const clients = new Map<string, SuiteClient>();

    before(async () => {
      // With authentication on, as in production: grpc-js sends the API key itself, the others a
      // session token from Authenticate.
      const args = ["--auth", "on", "--auth-failures-per-minute", "1000", ...flags];
      if (onPostgres) {
        schema = freshSchemaName();
        const store = await openPostgresStore({ url: testDatabaseUrl, schema });
        server = await startTestServer(args, { store });
      } else {
        server = await startTestServer(args);
      }
      const auth = await fetch(`${server.url}/spage.api.SpageAPI/Authenticate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ apiKey: server.adminKey, clientId: "behaviour-suite" }),
      });
      const { token } = (await auth.json()) as { token: string };
      const all = [
        grpcJsClient(server.url, undefined, server.adminKey),
        ...connectNodeClients(server.url, { token }),
        fetchJsonClient(server.url, token),
        bufCurlClient(server.url, "connect", undefined, token),
        bufCurlClient(server.url, "grpcweb", undefined, token),
        bufCurlClient(server.url, "grpc", undefined, token),
      ];
      for (const c of all) clients.set(c.name, c);
    });

    after(async () => {
      for (const c of clients.values()) await c.close();
      await server.close();
      if (schema) await dropSchema(schema);
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
  });
}
