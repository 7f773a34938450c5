/**
 * Resuming a watch: a watcher that is cut off mid-run and comes back with after_sequence set to the
 * last sequence it received gets exactly what it missed, in order and once, then live events. And
 * "read, then watch from there": the sequence GetTaskStatus and ListTasks return is the position
 * their answer reflects, so a watch from it continues the read without a gap or an overlap.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Client, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { type Event, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { CoreSimulator, type CoreUpdate, doneUpdate, startUpdate } from "./helpers/core-simulator.js";
import { describeEvents, type GatewayClients, gatewayClients, watchUntil } from "./helpers/event-watch.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** A WatchEvents call being followed: events so far, waits on them, and a way to cut it off. */
class Follower {
  readonly events: Event[] = [];
  /** Resolves with how the stream ended: "aborted" when cut off, otherwise the error code. */
  readonly ended: Promise<string>;
  private readonly ac = new AbortController();
  private readonly waiters = new Set<() => void>();

  constructor(
    api: Client<typeof SpageAPI>,
    req: { taskId?: string; afterSequence: bigint },
    /** Cut off (abort) after this many events. */
    stopAfter = Number.POSITIVE_INFINITY,
    timeoutMs = 15_000,
  ) {
    // The deadline is a client-side timeout signal rather than `timeoutMs`: over the Connect
    // protocol the server keeps a cancelled call's deadline timer until the deadline passes, which
    // would hold the test process open that long.
    const signal = AbortSignal.any([this.ac.signal, AbortSignal.timeout(timeoutMs)]);
    const it = api.watchEvents(req, { signal })[Symbol.asyncIterator]();
    this.ended = (async () => {
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) return "done";
          this.events.push(r.value);
          if (this.events.length >= stopAfter) this.ac.abort();
          for (const w of [...this.waiters]) w();
          if (this.ac.signal.aborted) break;
        }
      } catch (err) {
        if (!this.ac.signal.aborted) return ConnectError.from(err).code.toString();
      } finally {
        this.ac.abort();
        for (const w of [...this.waiters]) w();
        // Lets connect notice the abort and release the call.
        await it.next().catch(() => {});
      }
      return "aborted";
    })();
  }

  /** Resolves once at least `n` events arrived; fails, listing them, after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.events.length >= n) {
          done();
          resolve();
        } else if (this.ac.signal.aborted) {
          done();
          reject(new Error(`watch ended with ${this.events.length} of ${n} events`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.events.length} of ${n} events within ${timeoutMs} ms:\n${describeEvents(this.events)}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Cuts the watch off and waits for it to end. */
  async stop(): Promise<string> {
    this.ac.abort();
    return this.ended;
  }
}

/** The first `n` updates of a long run on web1/web2: start and done per Ansible task and host. */
function runUpdates(n: number): CoreUpdate[] {
  const out: CoreUpdate[] = [];
  for (let t = 0; out.length < n; t++) {
    for (const host of ["web1", "web2"]) out.push(startUpdate(`step ${t}`, host));
    for (const host of ["web1", "web2"]) out.push(doneUpdate(`step ${t}`, host, "", t));
  }
  return out.slice(0, n);
}

const sequences = (events: readonly Event[]) => events.map((e) => e.sequence);

describe("resuming a watch", () => {
  let server: TestServer;
  let clients: GatewayClients;
  const cores: CoreSimulator[] = [];
  const transports: { name: string; transport: Transport; close: () => void }[] = [];

  before(async () => {
    server = await startTestServer();
    clients = gatewayClients(server.url);
    const sm = new Http2SessionManager(server.url);
    transports.push(
      {
        name: "connect-node gRPC h2",
        transport: createGrpcTransport({ baseUrl: server.url, sessionManager: sm }),
        close: () => sm.abort(),
      },
      {
        name: "connect-node Connect JSON HTTP/1.1",
        transport: createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
        close: () => {},
      },
    );
  });

  after(async () => {
    for (const core of cores) await core.exit();
    for (const t of transports) t.close();
    clients.close();
    await server.close();
  });

  for (const [i, name] of ["connect-node gRPC h2", "connect-node Connect JSON HTTP/1.1"].entries()) {
    it(`${name}: gets exactly the events it missed, in order and once, then live ones`, async () => {
      const entry = transports[i];
      assert.ok(entry);
      const api = createClient(SpageAPI, entry.transport);
      const taskId = `resume-${i}`;
      const core = new CoreSimulator({
        target: `127.0.0.1:${server.port}`,
        run: { taskId, playbook: "site.yml", inventory: "hosts", variables: {}, engine: "local" },
      });
      cores.push(core);
      const updates = runUpdates(30);
      await core.register();

      // Before: the watcher follows the run and is cut off after k events, mid-run.
      const k = 7;
      const first = new Follower(api, { taskId, afterSequence: 0n }, k);
      await first.waitFor(2); // both registrations, replayed
      for (const u of updates.slice(0, 10)) core.send(u);
      assert.equal(await first.ended, "aborted");
      assert.equal(first.events.length, k);
      const last = first.events[k - 1]?.sequence ?? 0n;

      // Away: more of the run happens.
      for (const u of updates.slice(10, 20)) core.send(u);
      await core.waitForReplies(20);

      // Back: resume from the last sequence received; first the missed events, then live ones.
      const missed = 2 + 1 + 20 - k; // registrations, PENDING->RUNNING, 20 progress events, minus seen
      const second = new Follower(api, { taskId, afterSequence: last });
      await second.waitFor(missed);
      for (const u of updates.slice(20)) core.send(u);
      core.finishRun("completed", 0);
      const total = 2 + 1 + updates.length + 1 + 1; // ... + run end progress + RUNNING->COMPLETED
      await second.waitFor(total - k);
      await core.exit();

      // A fence: a registration after the run. Nothing but it may follow what was expected.
      await clients.exec.registerTask({ taskId, playbook: "site.yml" });
      await second.waitFor(total - k + 1);
      assert.equal(await second.stop(), "aborted");
      const fence = second.events.pop();
      assert.equal(fence?.type, "task.registered");

      const all = await watchUntil(clients.api, { taskId, afterSequence: 0n }, (e) => e.length >= total);
      assert.deepEqual(
        sequences(first.events),
        sequences(all.slice(0, k)),
        "before the cut: the log's start",
      );
      assert.deepEqual(
        sequences(second.events),
        sequences(all.slice(k)),
        `after resuming: exactly the rest, in order, no duplicate\nfirst:\n${describeEvents(first.events)}\nsecond:\n${describeEvents(second.events)}`,
      );
      assert.equal(second.events[0]?.sequence, last + 1n, "resumes right after the last sequence received");
      assert.deepEqual(
        second.events.map((e) => e.type),
        all.slice(k).map((e) => e.type),
      );
      assert.equal(new Set(sequences([...first.events, ...second.events])).size, total, "no duplicate");
      assert.deepEqual(all[all.length - 1]?.data, { from: "RUNNING", to: "COMPLETED" });
    });
  }

  it("read, then watch from there: GetTaskStatus's and ListTasks's sequence continue without a gap", async () => {
    const taskId = "read-then-watch";
    const submitted = await clients.api.submitTask({
      taskId,
      type: "playbook",
      payload: { playbook: "x.yml" },
    });
    assert.equal(submitted.success, true);
    const core = new CoreSimulator({
      target: `127.0.0.1:${server.port}`,
      run: { taskId, playbook: "x.yml", inventory: "", variables: {}, engine: "" },
    });
    cores.push(core);
    const steps = 40;
    core.send(startUpdate("ping", "web1"));
    for (let n = 0; n < steps; n++) core.send(doneUpdate("ping", "web1", "", n));
    const total = steps + 1;

    // Read while the updates are being stored: each answer is a state and the position it reflects.
    const reads: { ok: number; running: number; sequence: bigint; via: string }[] = [];
    do {
      const status = await clients.api.getTaskStatus({ taskId });
      const web1 = status.task?.hosts.find((h) => h.host === "web1");
      reads.push({
        ok: web1?.ok ?? 0,
        running: web1?.running ?? 0,
        sequence: status.sequence,
        via: "GetTaskStatus",
      });
      const listing = await clients.api.listTasks({ idPrefix: taskId });
      assert.equal(listing.tasks.length, 1);
      const listed = listing.tasks[0]?.hosts.find((h) => h.host === "web1");
      reads.push({
        ok: listed?.ok ?? 0,
        running: listed?.running ?? 0,
        sequence: listing.sequence,
        via: "ListTasks",
      });
    } while (core.repliesRead < total);
    await core.exit();

    // task.submitted, PENDING->RUNNING, then one task.progress per update.
    const log = await watchUntil(clients.api, { taskId, afterSequence: 0n }, (e) => e.length >= 2 + total);
    const progress = log.filter((e) => e.type === "task.progress");
    assert.equal(progress.length, total);
    for (const r of reads) {
      // Everything up to the read's sequence is applied, and nothing after it.
      const applied = progress.filter((e) => e.sequence <= r.sequence);
      const okApplied = applied.filter((e) => e.data.outcome === "ok").length;
      assert.equal(
        r.ok,
        okApplied,
        `${r.via} at ${r.sequence}: ok=${r.ok} but ${okApplied} ok updates were stored`,
      );
    }
    const final = (await clients.api.getTaskStatus({ taskId })).task;
    assert.equal(final?.status, TaskStatus.RUNNING);

    // A watch from a read's sequence yields exactly the events after it, gap-free.
    const read = reads.find((r) => r.ok > 0 && r.ok < steps) ?? reads[0];
    assert.ok(read);
    const lastSequence = log[log.length - 1]?.sequence ?? 0n;
    const rest = await watchUntil(
      clients.api,
      { afterSequence: read.sequence },
      (e) => (e[e.length - 1]?.sequence ?? 0n) >= lastSequence,
    );
    assert.deepEqual(
      sequences(rest),
      sequences(log.filter((e) => e.sequence > read.sequence)),
      "exactly the events after the read",
    );
    rest.forEach((e, n) => {
      assert.equal(e.sequence, read.sequence + BigInt(n + 1), `gap-free after ${read.sequence}`);
    });
    assert.equal(
      rest.filter((e) => e.data.outcome === "ok").length + read.ok,
      steps,
      "the read plus what followed it is the whole run",
    );

    // ListTasks's sequence is the log's position too: once quiet, the last stored event.
    const listing = await clients.api.listTasks({ idPrefix: taskId });
    assert.equal(listing.sequence, lastSequence);
    assert.equal((await clients.api.getTaskStatus({ taskId })).sequence, lastSequence);
  });
});
