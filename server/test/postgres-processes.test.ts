/**
 * Three gateway processes on one PostgreSQL schema, started at the same moment on an empty schema,
 * behind a small TCP balancer for the agent: a task submitted on A runs on the reference agent
 * connected to B as a real process while a watcher on C follows every event; B is SIGKILLed mid-run,
 * the agent reconnects through the balancer to A, and the task ends COMPLETED with every output
 * line once. Then A is SIGKILLed under a watcher attached to it, and the watcher resumes on C from
 * its last sequence with no gap and no duplicate.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { after, describe, it } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { type Event, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { gatewayClients } from "./helpers/event-watch.js";
import { startGatewayProcess } from "./helpers/gateway-process.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { waitForTask } from "./helpers/test-daemon.js";

/** A TCP forwarder to whichever backend port is current, as a load balancer would. */
async function startBalancer(
  target: number,
): Promise<{ port: number; to(p: number): void; close(): Promise<void> }> {
  let current = target;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(current, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    to(p) {
      current = p;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const gapFree = (seqs: readonly bigint[]) => seqs.every((s, i) => i === 0 || s === (seqs[i - 1] ?? 0n) + 1n);

describe("three gateway processes on one PostgreSQL schema", () => {
  const schema = freshSchemaName();
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await dropSchema(schema);
  });

  it("a run survives its gateway's death, and a watcher resumes on another gateway exactly", async () => {
    const args = ["--port", "0", "--database-url", testDatabaseUrl, "--database-schema", schema];
    // Started together on an empty schema: they migrate it once between them.
    const [a, b, c] = [startGatewayProcess(args), startGatewayProcess(args), startGatewayProcess(args)];
    for (const g of [a, b, c]) {
      cleanups.push(async () => {
        g.child.kill("SIGKILL");
        await g.exited;
      });
    }
    const [pa, pb, pc] = await Promise.all([a.port, b.port, c.port]);
    const migrated = [a, b, c].filter((g) => g.logs.some((l) => l.msg === "applied PostgreSQL migrations"));
    assert.ok(migrated.length <= 1, "the schema is migrated by one gateway at most");
    const url = (p: number) => `http://127.0.0.1:${p}`;
    const ca = gatewayClients(url(pa));
    const cc = gatewayClients(url(pc));
    cleanups.push(async () => {
      ca.close();
      cc.close();
    });

    const start = (await cc.api.listTasks({ limit: 1 })).sequence;
    // The watcher on C follows everything from here.
    const onC: Event[] = [];
    const watchAc = new AbortController();
    const watching = (async () => {
      try {
        for await (const ev of cc.api.watchEvents({ afterSequence: start }, { signal: watchAc.signal }))
          onC.push(ev);
      } catch {
        // aborted at the end
      }
    })();

    const balancer = await startBalancer(pb);
    cleanups.push(() => balancer.close());
    const lines = 8;
    const agent = startAgentProcess({
      endpoint: url(balancer.port),
      daemonId: "agent-lb",
      command: `for i in $(seq 1 ${lines}); do echo line-$i; sleep 0.4; done`,
    });
    cleanups.push(() => agent.cleanup());
    await agent.waitForLog((l) => l.msg === "connected to the gateway");

    await ca.api.submitTask({ taskId: "lb-run-1", type: "shell" });
    await agent.waitForLog((l) => l.msg === "task started" && l.task === "lb-run-1");
    await waitForTask(ca.api, "lb-run-1", (t) => t.status === TaskStatus.RUNNING, 10_000);
    await new Promise((r) => setTimeout(r, 900));

    // B dies mid-run; the balancer sends the agent's next connection to A.
    balancer.to(pa);
    b.child.kill("SIGKILL");
    await b.exited;

    const done = await waitForTask(ca.api, "lb-run-1", TaskStatus.COMPLETED, 30_000);
    assert.equal(done.result.exit_code, "0");
    assert.ok(agent.count((l) => l.msg === "connected to the gateway") >= 2, "the agent reconnected (to A)");
    assert.equal(done.attempts.length, 1, "one attempt: the run was re-attached, not started again");
    await new Promise((r) => setTimeout(r, 300));
    const runEvents = onC.filter((e) => e.taskId === "lb-run-1");
    const output = runEvents
      .filter((e) => e.type === "task.output")
      .flatMap((e) => (e.data.line ?? "").split("\n"))
      .filter((l) => l !== "");
    assert.deepEqual(
      output,
      Array.from({ length: lines }, (_, i) => `line-${i + 1}`),
      "every line once, in order",
    );
    assert.ok(runEvents.some((e) => e.type === "task.status" && e.data.to === "COMPLETED"));
    const seqC = onC.map((e) => e.sequence);
    assert.ok(gapFree(seqC) && seqC[0] === start + 1n, `C saw every event in order: ${seqC.join(",")}`);

    // A watcher on A, then A dies under it: it resumes on C from its last sequence.
    const from = (await cc.api.listTasks({ limit: 1 })).sequence;
    const onA: Event[] = [];
    const ended = (async () => {
      try {
        for await (const ev of ca.api.watchEvents({ afterSequence: from })) onA.push(ev);
      } catch (err) {
        return ConnectError.from(err);
      }
      return undefined;
    })();
    for (let i = 0; i < 5; i++)
      await cc.api.submitTask({
        taskId: `before-kill-${i}`,
        type: "shell",
        payload: { target_labels: "none=none" },
      });
    const until = Date.now() + 10_000;
    while (onA.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.ok(onA.length >= 5, `the watcher on A got the first events (${onA.length})`);
    a.child.kill("SIGKILL");
    await a.exited;
    assert.ok(await ended, "the watcher on A saw its gateway go");
    for (let i = 0; i < 5; i++)
      await cc.api.submitTask({
        taskId: `after-kill-${i}`,
        type: "shell",
        payload: { target_labels: "none=none" },
      });
    const last = onA[onA.length - 1]?.sequence ?? from;
    const resumed: Event[] = [];
    const upTo = (await cc.api.listTasks({ limit: 1 })).sequence;
    for await (const ev of cc.api.watchEvents({ afterSequence: last })) {
      resumed.push(ev);
      if (ev.sequence >= upTo) break;
    }
    const all = [...onA, ...resumed].map((e) => e.sequence);
    assert.ok(gapFree(all), `no gap, no duplicate across the two gateways: ${all.join(",")}`);
    assert.equal(all[0], from + 1n);
    assert.equal(all[all.length - 1], upTo);
    watchAc.abort();
    await watching;
  });
});
