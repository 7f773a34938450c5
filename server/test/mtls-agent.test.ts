/**
 * A daemon with no key on disk: a real `spage-gateway agent` process authenticates with only a
 * client certificate (--tls-ca, --tls-client-cert, --tls-client-key), is handed a task and runs it;
 * the client commands take the same options. An agent whose certificate the gateway does not trust
 * is refused and stops with the reason.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { storedEvents, waitForStatus } from "./helpers/agent-harness.js";
import { type AgentProcess, startAgentProcess } from "./helpers/agent-process.js";
import { openLimits } from "./helpers/auth-clients.js";
import { runCli } from "./helpers/cli-run.js";
import { bearer } from "./helpers/suite-clients.js";
import { createTestCa, type IssuedCert, type TestCa } from "./helpers/test-pki.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("an agent authenticated by its client certificate alone", () => {
  let ca: TestCa;
  let daemon: IssuedCert;
  let server: TestServer;
  let sessions: Http2SessionManager;
  let api: Client<typeof SpageAPI>;
  const agents: AgentProcess[] = [];

  before(async () => {
    ca = createTestCa("agent-test-ca");
    const serverCert = ca.issue("localhost", { san: ["DNS:localhost", "IP:127.0.0.1"] });
    daemon = ca.issue("daemon-7");
    server = await startTestServer([
      ...openLimits,
      "--tls-cert",
      serverCert.certPath,
      "--tls-key",
      serverCert.keyPath,
      "--tls-client-ca",
      ca.certPath,
      // The relay passes the agent's cores' calls on with the agent's own identity.
      "--client-cert-scopes",
      "cn:daemon-*=agent,execution,tasks:read",
    ]);
    sessions = new Http2SessionManager(server.url, {}, { ca: ca.cert });
    api = createClient(
      SpageAPI,
      createGrpcTransport({
        baseUrl: server.url,
        sessionManager: sessions,
        interceptors: [bearer(server.adminKey)],
      }),
    );
  });

  after(async () => {
    for (const a of agents) await a.cleanup();
    sessions?.abort();
    await server?.close();
  });

  const tlsArgs = (identity: IssuedCert) => [
    "--tls-ca",
    ca.certPath,
    "--tls-client-cert",
    identity.certPath,
    "--tls-client-key",
    identity.keyPath,
  ];

  it("receives a task and runs it", async () => {
    const agent = startAgentProcess({
      endpoint: server.url,
      daemonId: "cert-daemon",
      command: "echo ran {task_id}",
      extraArgs: tlsArgs(daemon),
      env: { SPAGE_TOKEN: "" },
    });
    agents.push(agent);
    await api.submitTask({ taskId: "cert-task-1", type: "job" });
    await waitForStatus(api, "cert-task-1", TaskStatus.COMPLETED, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent:\n${agent.stderr()}`);
    });
    const events = await storedEvents(api, "cert-task-1");
    const output = events.filter((e) => e.type === "task.output").map((e) => e.data.line ?? "");
    assert.ok(
      output.some((l) => l.includes("ran cert-task-1")),
      `output: ${JSON.stringify(output)}`,
    );
    const daemons = await api.listDaemons({});
    assert.ok(
      daemons.daemons.some((d) => d.id === "cert-daemon"),
      JSON.stringify(daemons.daemons.map((d) => d.id)),
    );
    await agent.kill("SIGTERM");
  });

  it("the client commands authenticate with a certificate too", async () => {
    const res = await runCli(["get", "cert-task-1", "--endpoint", server.url, ...tlsArgs(daemon), "--json"]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /cert-task-1/);
    const half = await runCli([
      "get",
      "cert-task-1",
      "--endpoint",
      server.url,
      "--tls-client-cert",
      daemon.certPath,
    ]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /needs both --tls-client-cert FILE and --tls-client-key FILE/);
  });

  it("an agent whose certificate is not trusted is refused and says why", async () => {
    const stranger = createTestCa("other-ca").issue("daemon-8");
    const agent = startAgentProcess({
      endpoint: server.url,
      daemonId: "untrusted-daemon",
      command: "echo never",
      extraArgs: [
        "--tls-ca",
        ca.certPath,
        "--tls-client-cert",
        stranger.certPath,
        "--tls-client-key",
        stranger.keyPath,
      ],
      env: { SPAGE_TOKEN: "" },
    });
    agents.push(agent);
    await agent.waitForLog((l) => /client certificate CN=daemon-8 refused/.test(JSON.stringify(l)), 15_000);
    assert.notEqual(await agent.exited, 0);
  });
});
