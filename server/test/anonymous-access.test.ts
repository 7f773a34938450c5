/**
 * Callers without credentials (Spage cores) may only report their own runs. From the gateway's own
 * host with the default policy, no credentials and every kind of client (curl, grpc-js,
 * connect-node): cancelling, re-registering or reporting on an admin's task is refused and changes
 * nothing, starting a task needs credentials, and every refused attempt on someone else's task is
 * audited. Behind a reverse proxy the real client address decides, and a proxy's forwarding headers
 * are believed only from --trusted-proxies. A real agent relays its cores' calls with its own
 * credentials, so agent runs need no anonymous access, and its cores cannot touch other tasks.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { JsonObject } from "@bufbuild/protobuf";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { type Event, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { shellQuote } from "../src/agent/command-template.js";
import { Cleanup, startGateway, storedEvents, tempDir, waitForStatus } from "./helpers/agent-harness.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { type ClientName, makeClient, openLimits, refused, useGateway } from "./helpers/auth-clients.js";
import { CoreSimulator, doneUpdate, startUpdate } from "./helpers/core-simulator.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { str } from "./helpers/suite-clients.js";
import { startTestServer } from "./helpers/test-server.js";

const run = promisify(execFile);
const fakeCore = fileURLToPath(new URL("./fixtures/fake-spage-core.ts", import.meta.url));

/** The audit records of `taskId`, as an admin reads them. */
async function auditOf(h: ReturnType<typeof useGateway>, taskId: string): Promise<JsonObject[]> {
  const res = await h.admin.unary(SpageAPI, "ListAuditEvents", { taskId, limit: 100 });
  return (res.events as JsonObject[] | undefined) ?? [];
}

/** What must not change about a victim task: its state, payload and event log. */
async function snapshot(api: GatewayClients["api"], taskId: string) {
  const task = (await api.getTaskStatus({ taskId })).task;
  const events = (await storedEvents(api, taskId)).map((e: Event) => [e.sequence, e.type, e.data]);
  return { task, events };
}

describe("callers without credentials may only report their own runs", () => {
  let admin: GatewayClients | undefined;
  // Registered before the gateway's own hook, so the client lets go before the leak check.
  after(() => admin?.close());
  const h = useGateway(openLimits);
  let victim = "";

  const adminApi = () => {
    admin ??= gatewayClients(h.server.url, h.server.adminKey);
    return admin.api;
  };

  before(async () => {
    const res = await h.admin.unary(SpageAPI, "SubmitTask", {
      taskId: "victim-1",
      type: "playbook",
      payload: { playbook: "site.yml", inventory: "prod.ini" },
    });
    victim = str(res.taskId);
  });

  const clients: ClientName[] = ["grpc-js h2", "connect-node gRPC h2", "connect-node Connect JSON h1"];
  for (const name of clients) {
    it(`${name}: cancel, re-register and execute without credentials are refused; the victim is unchanged`, async () => {
      const before = await snapshot(adminApi(), victim);
      const anon = h.client(undefined, name);
      await refused(
        anon.unary(SpageExecution, "CancelTask", { taskId: victim, reason: "mine now" }),
        "unauthenticated",
        /spage\.core\.SpageExecution\/CancelTask needs credentials: callers without credentials may only report runs an anonymous Spage core registered; send "Authorization: Bearer <key or token>" with scope "execution" or "tasks:cancel"/,
      );
      await refused(
        anon.unary(SpageExecution, "RegisterTask", { taskId: victim, playbook: "evil.yml" }),
        "permission_denied",
        /cannot re-register task victim-1 without credentials: callers without credentials may only report runs an anonymous Spage core registered/,
      );
      await refused(
        anon.unary(SpageExecution, "GetTaskStatus", { taskId: victim }),
        "permission_denied",
        /cannot read task victim-1 without credentials/,
      );
      const fresh = `new-anon-${name.replace(/\W+/g, "-")}`;
      await refused(
        anon.unary(SpageExecution, "ExecuteTask", { taskId: fresh, playbook: "x.yml" }),
        "unauthenticated",
        /spage\.core\.SpageExecution\/ExecuteTask needs credentials/,
      );
      assert.deepEqual(
        await snapshot(adminApi(), victim),
        before,
        "status, payload and events are untouched",
      );
      await refused(h.admin.unary(SpageAPI, "GetTaskStatus", { taskId: fresh }), "not_found", /not found/);
    });
  }

  it("curl: the same three calls from the issue are refused", async () => {
    const before = await snapshot(adminApi(), victim);
    const curl = async (method: string, body: object) => {
      const { stdout } = await run("curl", [
        "-s",
        "-X",
        "POST",
        `${h.server.url}/spage.core.SpageExecution/${method}`,
        "-H",
        "content-type: application/json",
        "-d",
        JSON.stringify(body),
      ]);
      return JSON.parse(stdout) as { code?: string; success?: boolean };
    };
    assert.equal((await curl("CancelTask", { taskId: victim })).code, "unauthenticated");
    assert.equal(
      (await curl("RegisterTask", { taskId: victim, playbook: "evil.yml" })).code,
      "permission_denied",
    );
    assert.equal(
      (await curl("ExecuteTask", { taskId: "new-anon", playbook: "x.yml" })).code,
      "unauthenticated",
    );
    assert.deepEqual(await snapshot(adminApi(), victim), before);
  });

  it("the play era holds the same rule: a play id is a task id", async () => {
    const before = await snapshot(adminApi(), victim);
    const anon = h.client(undefined, "grpc-js h2");
    await refused(
      anon.unary(SpageExecution, "CancelPlay", { playId: victim, reason: "mine now" }),
      "unauthenticated",
      /CancelPlay needs credentials/,
    );
    await refused(
      anon.unary(SpageExecution, "ExecutePlay", { playId: "new-anon-play", playbook: "x.yml" }),
      "unauthenticated",
      /ExecutePlay needs credentials/,
    );
    await refused(
      anon.unary(SpageExecution, "RegisterPlay", { playId: victim, playbook: "evil.yml" }),
      "permission_denied",
      /cannot re-register task victim-1 without credentials/,
    );
    await refused(
      anon.unary(SpageExecution, "RegisterPlayCompletion", { playId: victim, status: "PLAY_STATUS_FAILED" }),
      "permission_denied",
      /cannot complete task victim-1 without credentials/,
    );
    await refused(
      anon.unary(SpageExecution, "GetPlayStatus", { playId: victim }),
      "permission_denied",
      /cannot read task victim-1 without credentials/,
    );
    const plays = await anon.bidiStream(SpageExecution, "StreamPlayProgress", [
      { playId: victim, status: "PLAY_STATUS_COMPLETED" },
    ]);
    assert.match(str(plays[0]?.error), /permission_denied: cannot report progress on task victim-1/);
    const steps = await anon.bidiStream(SpageExecution, "StreamTaskProgress", [
      { playId: victim, taskId: 1, result: { taskId: 1, status: "TASK_STATUS_FAILED" } },
    ]);
    assert.match(str((steps[0]?.result as JsonObject | undefined)?.error), /permission_denied/);
    assert.deepEqual(await snapshot(adminApi(), victim), before, "the victim is untouched");
    await refused(
      h.admin.unary(SpageAPI, "GetTaskStatus", { taskId: "new-anon-play" }),
      "not_found",
      /not found/,
    );
    // Its own play, an anonymous core may run.
    const own = await anon.bidiStream(SpageExecution, "StreamPlayProgress", [
      { playId: "anon-own-play", status: "PLAY_STATUS_PENDING", output: "Play started" },
      { playId: "anon-own-play", status: "PLAY_STATUS_COMPLETED", output: "Play completed" },
    ]);
    assert.equal(own[1]?.status, "PLAY_STATUS_COMPLETED");
    const status = await anon.unary(SpageExecution, "GetPlayStatus", { playId: "anon-own-play" });
    assert.equal((status.play as JsonObject).status, "PLAY_STATUS_COMPLETED");
  });

  it("progress on someone else's task is answered with the refusal on the stream, audited once", async () => {
    const before = await snapshot(adminApi(), victim);
    const core = new CoreSimulator({
      target: `127.0.0.1:${h.server.port}`,
      run: { taskId: victim, playbook: "site.yml", inventory: "", variables: {}, engine: "" },
    });
    core.send(startUpdate("evil", "web1"));
    core.send(doneUpdate("evil", "web1", "", 0));
    await core.waitForReplies(2);
    await core.exit();
    for (const reply of core.received) {
      assert.equal(reply.metadata.ack, "false");
      assert.equal(reply.metadata.code, "permission_denied");
    }
    assert.deepEqual(await snapshot(adminApi(), victim), before);
    const refusals = (await auditOf(h, victim)).filter(
      (r) => r.method === "spage.core.SpageExecution/StreamProgress" && r.code === "permission_denied",
    );
    assert.equal(refusals.length, 1, JSON.stringify(refusals));
    assert.equal(refusals[0]?.principal, "anonymous");
    assert.equal(refusals[0]?.clientAddress, "127.0.0.1");
  });

  it("every refused attempt on the victim is in the audit log with address, method and task", async () => {
    const records = (await auditOf(h, victim)).filter((r) => r.principal === "anonymous");
    const methods = new Set(records.map((r) => str(r.method)));
    for (const m of ["RegisterTask", "GetTaskStatus", "StreamProgress"]) {
      assert.ok(
        methods.has(`spage.core.SpageExecution/${m}`),
        `${m} refusal audited: ${[...methods].join(", ")}`,
      );
    }
    for (const r of records) {
      assert.equal(r.clientAddress, "127.0.0.1");
      assert.equal(r.taskId, victim);
      assert.equal(r.code, "permission_denied");
    }
    const cancels = (await auditOf(h, victim)).filter(
      (r) => r.method === "spage.core.SpageExecution/CancelTask",
    );
    assert.ok(cancels.length >= 3 && cancels.every((r) => r.code === "unauthenticated"));
  });

  it("a core's own run works end to end without credentials, owned by the anonymous core", async () => {
    const taskId = "anon-own-run";
    const core = new CoreSimulator({
      target: `127.0.0.1:${h.server.port}`,
      run: { taskId, playbook: "site.yml", inventory: "hosts.ini", variables: {}, engine: "local" },
    });
    await core.register();
    core.send(startUpdate("ping", "web1"));
    core.send(doneUpdate("ping", "web1", "", 0));
    await core.waitForReplies(2);
    assert.ok(core.received.every((r) => r.metadata.ack === "true"));
    const status = await h.client(undefined, "grpc-js h2").unary(SpageExecution, "GetTaskStatus", { taskId });
    assert.equal((status.task as JsonObject).owner, "anonymous@127.0.0.1");
    await core.exit();
    const task = await waitForStatus(adminApi(), taskId, TaskStatus.COMPLETED, 15_000);
    assert.equal(task.owner, "anonymous@127.0.0.1");
    assert.equal(task.origin, "core");
  });

  it("registration never overwrites, whoever calls: a different playbook is refused, empty fields fill", async () => {
    const admin = h.admin;
    await refused(
      admin.unary(SpageExecution, "RegisterTask", { taskId: victim, playbook: "evil.yml" }),
      "failed_precondition",
      /registered with other contents: playbook "evil.yml" \(registered: "site.yml"\)/,
    );
    await refused(
      admin.unary(SpageExecution, "RegisterTask", { taskId: victim, inventory: "other.ini" }),
      "failed_precondition",
      /inventory "other.ini"/,
    );
    const ok = await admin.unary(SpageExecution, "RegisterTask", {
      taskId: victim,
      playbook: "site.yml",
      engine: "local",
      variables: { env: "prod" },
    });
    assert.equal(ok.success, true);
    const task = (await admin.unary(SpageAPI, "GetTaskStatus", { taskId: victim })).task as JsonObject;
    const payload = task.payload as Record<string, string>;
    assert.equal(payload.playbook, "site.yml");
    assert.equal(payload.engine, "local");
    await refused(
      admin.unary(SpageExecution, "RegisterTask", { taskId: victim, variables: { env: "dev" } }),
      "failed_precondition",
      /variables\.env "dev" \(registered: "prod"\)/,
    );
  });
});

/** A small reverse proxy on loopback that adds `X-Forwarded-For: <forwardedFor>` to every request. */
async function startForwardingProxy(
  targetPort: number,
  forwardedFor: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const upstream = request(
      {
        host: "127.0.0.1",
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, "x-forwarded-for": forwardedFor },
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("behind a reverse proxy on the same host", () => {
  for (const trusted of [false, true]) {
    it(`${trusted ? "with" : "without"} --trusted-proxies, a forwarded call without credentials is not a local core`, async () => {
      const args = [...openLimits, ...(trusted ? ["--trusted-proxies", "127.0.0.1"] : [])];
      const server = await startTestServer(args);
      const outside = await startForwardingProxy(server.port, "203.0.113.7");
      const local = await startForwardingProxy(server.port, "127.0.0.1");
      const clients = [
        makeClient("fetch Connect JSON h1", outside.url),
        makeClient("fetch Connect JSON h1", local.url),
      ];
      try {
        const [viaOutside, viaLocal] = clients as [(typeof clients)[0], (typeof clients)[0]];
        await refused(
          viaOutside.unary(SpageExecution, "RegisterTask", {
            taskId: `fwd-${trusted}`,
            playbook: "site.yml",
          }),
          "unauthenticated",
          trusted
            ? /only from loopback/
            : /came through a proxy this gateway does not trust \(--trusted-proxies\)/,
        );
        if (trusted) {
          // A client on the gateway's host behind the trusted proxy is a local core.
          const ok = await viaLocal.unary(SpageExecution, "RegisterTask", {
            taskId: "fwd-local",
            playbook: "site.yml",
          });
          assert.equal(ok.success, true);
        } else {
          await refused(
            viaLocal.unary(SpageExecution, "RegisterTask", { taskId: "fwd-local", playbook: "site.yml" }),
            "unauthenticated",
            /does not trust/,
          );
        }
        const admin = makeClient("connect-node gRPC h2", server.url, server.adminKey);
        clients.push(admin);
        const audit = await admin.unary(SpageAPI, "ListAuditEvents", { taskId: `fwd-${trusted}`, limit: 10 });
        const record = (audit.events as JsonObject[])[0];
        assert.equal(record?.code, "unauthenticated");
        assert.equal(
          record?.clientAddress,
          trusted ? "203.0.113.7" : "127.0.0.1",
          "the address the gateway believes",
        );
      } finally {
        for (const c of clients) await c.close();
        await outside.close();
        await local.close();
        await server.close();
      }
    });
  }
});

describe("an agent relays its cores' calls", () => {
  it("with --anonymous-execution none the run is recorded completely, and its core cannot touch other tasks", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-relay-");
      const g = await startGateway(cleanup, dir, {
        extraArgs: ["--auth", "on", "--anonymous-execution", "none"],
      });
      const { stdout: agentKey } = await run(process.execPath, [
        fileURLToPath(new URL("../../bin/spage-gateway.js", import.meta.url)),
        "keys",
        "create",
        "--name",
        "relay-agent",
        "--scopes",
        "agent,execution,tasks:read,tasks:write",
        "--data-dir",
        dir,
        "--quiet",
      ]);
      const key = agentKey.trim();
      const clients = gatewayClients(g.url, key);
      cleanup.add(() => clients.close());
      const api = clients.api;
      await api.submitTask({
        taskId: "victim-2",
        type: "playbook",
        payload: { playbook: "site.yml", target_labels: "zone=none" },
      });
      const before = (await api.getTaskStatus({ taskId: "victim-2" })).task;
      await api.submitTask({ taskId: "relayed-run", type: "playbook", payload: { playbook: "site.yml" } });
      const command = [
        shellQuote(process.execPath),
        "--import tsx",
        shellQuote(fakeCore),
        "--daemon-grpc {endpoint} --task-id {task_id} --playbook {playbook} --upstream --also-touch victim-2",
      ].join(" ");
      const agent = startAgentProcess({
        endpoint: g.url,
        daemonId: "relay-agent",
        command,
        env: { SPAGE_TOKEN: key },
      });
      cleanup.add(() => agent.cleanup());
      const task = await waitForStatus(api, "relayed-run", TaskStatus.COMPLETED, 30_000);
      assert.deepEqual(
        task.hosts.map((h) => `${h.host} ${h.ok}/${h.failed}/${h.skipped}/${h.running}`),
        ["web1 3/0/0/0", "web2 2/0/1/0"],
        "every update of the run arrived through the relay",
      );
      const events = await storedEvents(api, "relayed-run");
      assert.equal(events.filter((e) => e.type === "task.progress").length, 11);
      const lines = events
        .filter((e) => e.type === "task.output")
        .flatMap((e) => (e.data.line ?? "").split("\n"));
      assert.ok(lines.includes("touch register: permission_denied"), lines.join("\n"));
      assert.ok(lines.includes("touch progress: permission_denied"), lines.join("\n"));
      const after = (await api.getTaskStatus({ taskId: "victim-2" })).task;
      assert.deepEqual(after, before, "the task not assigned to the agent is untouched");
      assert.ok(
        agent.count((l) => l.msg === "a core called for a task not assigned to this agent; refused") >= 1,
      );
    } finally {
      await cleanup.run();
    }
  });
});
