/**
 * The TaskStore contract: what every backend must do, as one suite each backend runs
 * (store-sqlite.test.ts, store-postgres.test.ts). A backend is opened fresh for each test; `reopen`
 * opens the same database again after `close()`, to check what survives.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { HostSummarySchema, TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";
import type { NewTask, TaskStore } from "../src/store/task-store.js";

/**
 * Opens a fresh, empty store; `reopen` opens the same data again; `cleanup` (after every store is
 * closed) removes the data.
 */
export type OpenStore = () => Promise<{
  store: TaskStore;
  reopen: () => Promise<TaskStore>;
  cleanup: () => void | Promise<void>;
}>;

function newTask(id: string, over: Partial<NewTask> = {}): NewTask {
  return {
    id,
    type: "playbook",
    priority: TaskPriority.NORMAL,
    payload: { playbook: "site.yml" },
    metadata: { owner: "contract" },
    requestHash: `hash-${id}`,
    status: TaskStatus.PENDING,
    timeoutSeconds: 0,
    ...over,
  };
}

const submitted = (id: string) => ({ type: "task.submitted", taskId: id, data: { status: "PENDING" } });

/** Registers the contract tests for one backend. */
export function storeContract(name: string, open: OpenStore): void {
  describe(`TaskStore contract: ${name}`, () => {
    const withStore =
      (fn: (store: TaskStore, reopen: () => Promise<TaskStore>) => Promise<void>) => async () => {
        const { store, reopen, cleanup } = await open();
        try {
          await fn(store, reopen);
        } finally {
          await store.close();
          await cleanup();
        }
      };

    it(
      "creates a task once and returns the same record on a repeat",
      withStore(async (store) => {
        const first = await store.createTask(newTask("a"), submitted("a"));
        assert.equal(first.created, true);
        assert.equal(first.events.length, 1);
        assert.equal(first.events[0]?.sequence, 1n);
        assert.equal(first.record.task.status, TaskStatus.PENDING);
        assert.deepEqual(first.record.task.payload, { playbook: "site.yml" });
        assert.deepEqual(first.record.task.metadata, { owner: "contract" });
        assert.ok(first.record.task.createdAt);
        const again = await store.createTask(
          newTask("a", { type: "other", requestHash: "x" }),
          submitted("a"),
        );
        assert.equal(again.created, false);
        assert.equal(again.events.length, 0);
        assert.equal(again.record.task.type, "playbook", "the stored task is untouched");
        assert.equal(again.record.requestHash, "hash-a");
        const { record, sequence } = await store.getTask("a");
        assert.equal(record?.task.id, "a");
        assert.deepEqual(first.record, record, "the created record is the one stored");
        assert.deepEqual(
          first.events,
          await store.readEvents({ afterSequence: 0n, limit: 10 }),
          "the created event is the one stored",
        );
        assert.equal(sequence, 1n);
        assert.equal((await store.getTask("missing")).record, undefined);
      }),
    );

    it(
      "updates conditionally on status and version, with the events in the same step",
      withStore(async (store) => {
        const { record } = await store.createTask(newTask("c"), submitted("c"));
        const expected = { status: record.task.status, version: record.version };
        const hosts = [create(HostSummarySchema, { host: "web1", ok: 2, running: 1 })];
        const done = await store.updateTask(
          "c",
          expected,
          {
            status: TaskStatus.RUNNING,
            startedAt: new Date(),
            progress: 40,
            hosts,
            deadlineAt: new Date(Date.now() + 60_000),
          },
          [{ type: "task.status", taskId: "c", data: { from: "PENDING", to: "RUNNING" } }],
        );
        assert.ok(done);
        assert.equal(done.record.task.status, TaskStatus.RUNNING);
        assert.equal(done.record.task.progress, 40);
        assert.equal(done.record.task.hosts[0]?.host, "web1");
        assert.equal(done.record.task.hosts[0]?.ok, 2);
        assert.ok(done.record.task.deadlineAt);
        assert.equal(done.record.version, record.version + 1);
        assert.deepEqual(
          done.events.map((e) => e.sequence),
          [2n],
        );
        // A stale writer loses, and its events are not stored.
        const stale = await store.updateTask("c", expected, { status: TaskStatus.CANCELED }, [
          { type: "task.status", taskId: "c", data: {} },
        ]);
        assert.equal(stale, undefined);
        const wrongStatus = await store.updateTask(
          "c",
          { status: TaskStatus.PENDING, version: done.record.version },
          { progress: 1 },
          [],
        );
        assert.equal(wrongStatus, undefined);
        assert.equal((await store.getTask("c")).sequence, 2n);
        const cleared = await store.updateTask(
          "c",
          { status: TaskStatus.RUNNING, version: done.record.version },
          { deadlineAt: null, completedAt: new Date(), status: TaskStatus.COMPLETED },
          [],
        );
        assert.equal(cleared?.record.task.deadlineAt, undefined);
        assert.ok(cleared?.record.task.completedAt);
      }),
    );

    it(
      "lets exactly one of many concurrent writers win",
      withStore(async (store) => {
        const { record } = await store.createTask(newTask("race"), submitted("race"));
        const expected = { status: record.task.status, version: record.version };
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            store.updateTask("race", expected, { progress: i }, [
              { type: "task.progress", taskId: "race", data: {} },
            ]),
          ),
        );
        assert.equal(results.filter(Boolean).length, 1);
        assert.equal((await store.getTask("race")).sequence, 2n);
      }),
    );

    it(
      "numbers events gap-free across every kind of write, also when some writes fail",
      withStore(async (store) => {
        const writes = await Promise.allSettled([
          store.createTask(newTask("e1"), submitted("e1")),
          store.createTask(newTask("e1"), submitted("e1")), // duplicate: no event
          store.appendEvents([
            { type: "daemon.seen", taskId: "", data: { n: "1" } },
            { type: "daemon.seen", taskId: "", data: { n: "2" } },
          ]),
          store.updateTask("missing", { status: TaskStatus.PENDING, version: 1 }, { progress: 1 }, [
            { type: "lost", taskId: "missing", data: {} },
          ]),
          store.createTask(newTask("e2"), submitted("e2")),
        ]);
        assert.ok(writes.every((w) => w.status === "fulfilled"));
        const events = await store.readEvents({ afterSequence: 0n, limit: 100 });
        assert.deepEqual(
          events.map((e) => e.sequence),
          [1n, 2n, 3n, 4n],
        );
        // Concurrent calls may commit in any order; each call's own events stay together, in order.
        assert.deepEqual(events.map((e) => e.type).sort(), [
          "daemon.seen",
          "daemon.seen",
          "task.submitted",
          "task.submitted",
        ]);
        const seen = events.filter((e) => e.type === "daemon.seen");
        assert.deepEqual(
          seen.map((e) => e.data.n),
          ["1", "2"],
        );
        assert.equal(
          (seen[1]?.sequence ?? 0n) - (seen[0]?.sequence ?? 0n),
          1n,
          "one call's events are adjacent",
        );
        assert.ok(events.every((e) => e.id !== "" && e.timestamp));
        assert.equal(new Set(events.map((e) => e.id)).size, 4, "event ids are unique");
        assert.equal((await store.stats()).lastSequence, 4n);
      }),
    );

    it(
      "reads events after a sequence with task and type filters",
      withStore(async (store) => {
        await store.createTask(newTask("r1"), submitted("r1"));
        await store.createTask(newTask("r2"), submitted("r2"));
        await store.appendEvents([
          { type: "task.progress", taskId: "r1", data: { p: "1" } },
          { type: "task.progress", taskId: "r2", data: {} },
        ]);
        const r1 = await store.readEvents({ afterSequence: 0n, taskId: "r1", limit: 10 });
        assert.deepEqual(
          r1.map((e) => [e.sequence, e.type]),
          [
            [1n, "task.submitted"],
            [3n, "task.progress"],
          ],
        );
        assert.deepEqual(r1[1]?.data, { p: "1" });
        const progress = await store.readEvents({
          afterSequence: 1n,
          types: new Set(["task.progress"]),
          limit: 10,
        });
        assert.deepEqual(
          progress.map((e) => e.sequence),
          [3n, 4n],
        );
        const limited = await store.readEvents({ afterSequence: 0n, limit: 2 });
        assert.equal(limited.length, 2);
      }),
    );

    it(
      "lists with every filter, both orders, offsets and keyset pages, with an exact total",
      withStore(async (store) => {
        for (let i = 0; i < 12; i++) {
          await store.createTask(
            newTask(`job-${String(i).padStart(2, "0")}`, {
              type: i % 2 === 0 ? "playbook" : "script",
              priority: i % 3 === 0 ? TaskPriority.HIGH : TaskPriority.LOW,
            }),
            submitted(`job-${i}`),
          );
        }
        await store.createTask(newTask("other-1"), submitted("other-1"));
        const base = { limit: 5, offset: 0, order: "newest" as const };
        const all = await store.listTasks({ ...base, limit: 100 });
        assert.equal(all.total, 13);
        assert.equal(all.records[0]?.task.id, "other-1", "newest first");
        const oldest = await store.listTasks({ ...base, order: "oldest" });
        assert.equal(oldest.records[0]?.task.id, "job-00");
        assert.equal(oldest.more, true);
        const scripts = await store.listTasks({ ...base, limit: 100, type: "script" });
        assert.equal(scripts.total, 6);
        const high = await store.listTasks({ ...base, limit: 100, priority: TaskPriority.HIGH });
        assert.deepEqual(high.records.map((r) => r.task.id).sort(), ["job-00", "job-03", "job-06", "job-09"]);
        const prefixed = await store.listTasks({ ...base, limit: 100, idPrefix: "job-1" });
        assert.deepEqual(
          prefixed.records.map((r) => r.task.id),
          ["job-11", "job-10"],
        );
        const pending = await store.listTasks({ ...base, status: TaskStatus.PENDING });
        assert.equal(pending.total, 13);
        const none = await store.listTasks({ ...base, status: TaskStatus.RUNNING });
        assert.equal(none.total, 0);
        assert.equal(none.records.length, 0);
        const future = await store.listTasks({ ...base, createdAfter: new Date(Date.now() + 60_000) });
        assert.equal(future.total, 0);
        const past = await store.listTasks({ ...base, createdBefore: new Date(Date.now() + 60_000) });
        assert.equal(past.total, 13);
        const skip = await store.listTasks({ ...base, offset: 10 });
        assert.equal(skip.records.length, 3);
        assert.equal(skip.more, false);

        // Keyset paging is stable while tasks are added.
        const seen: string[] = [];
        let page = await store.listTasks({ ...base, limit: 4 });
        seen.push(...page.records.map((r) => r.task.id));
        await store.createTask(newTask("late-1"), submitted("late-1"));
        while (page.more) {
          const last = page.records[page.records.length - 1];
          page = await store.listTasks({ ...base, limit: 4, afterPosition: last?.position });
          seen.push(...page.records.map((r) => r.task.id));
        }
        assert.equal(seen.length, 13, "every task seen once, the late one not mixed in");
        assert.equal(new Set(seen).size, 13);
        assert.ok(!seen.includes("late-1"));
      }),
    );

    it(
      "keeps the pending queue in priority order, first in first out within a priority",
      withStore(async (store) => {
        const plan: [string, TaskPriority][] = [
          ["low-1", TaskPriority.LOW],
          ["normal-1", TaskPriority.NORMAL],
          ["critical-1", TaskPriority.CRITICAL],
          ["normal-2", TaskPriority.NORMAL],
          ["high-1", TaskPriority.HIGH],
          ["critical-2", TaskPriority.CRITICAL],
        ];
        for (const [id, priority] of plan) await store.createTask(newTask(id, { priority }), submitted(id));
        const { record } = await store.getTask("normal-1");
        assert.ok(record);
        await store.updateTask(
          "normal-1",
          { status: TaskStatus.PENDING, version: record.version },
          { status: TaskStatus.RUNNING },
          [],
        );
        const queue = await store.pendingQueue(10);
        assert.deepEqual(
          queue.map((r) => r.task.id),
          ["critical-1", "critical-2", "high-1", "normal-2", "low-1"],
        );
        assert.equal((await store.pendingQueue(2)).length, 2);
      }),
    );

    it(
      "finds due deadlines of active tasks only",
      withStore(async (store) => {
        for (const id of ["d1", "d2", "d3"])
          await store.createTask(newTask(id, { timeoutSeconds: 5 }), submitted(id));
        const past = new Date(Date.now() - 1000);
        const future = new Date(Date.now() + 60_000);
        for (const [id, deadline, status] of [
          ["d1", past, TaskStatus.RUNNING],
          ["d2", future, TaskStatus.RUNNING],
          ["d3", past, TaskStatus.CANCELED],
        ] as const) {
          const { record } = await store.getTask(id);
          assert.ok(record);
          await store.updateTask(
            id,
            { status: TaskStatus.PENDING, version: record.version },
            { status, deadlineAt: deadline },
            [],
          );
        }
        const due = await store.dueDeadlines(new Date(), 10);
        assert.deepEqual(
          due.map((r) => r.task.id),
          ["d1"],
        );
      }),
    );

    it(
      "counts tasks by status and reports recent queue and run times",
      withStore(async (store) => {
        for (const id of ["s1", "s2", "s3"]) await store.createTask(newTask(id), submitted(id));
        const { record } = await store.getTask("s1");
        assert.ok(record);
        assert.ok(record.task.createdAt);
        const created = timestampMs(record.task.createdAt);
        await store.updateTask(
          "s1",
          { status: TaskStatus.PENDING, version: record.version },
          {
            status: TaskStatus.COMPLETED,
            startedAt: new Date(created + 2000),
            completedAt: new Date(created + 5000),
          },
          [],
        );
        const stats = await store.stats();
        assert.equal(stats.tasksByStatus.get(TaskStatus.PENDING), 2);
        assert.equal(stats.tasksByStatus.get(TaskStatus.COMPLETED), 1);
        assert.equal(stats.lastSequence, 3n);
        const d = await store.recentDurations(10);
        assert.equal(d.runSeconds.length, 1);
        assert.ok(Math.abs((d.runSeconds[0] ?? 0) - 3) < 0.01);
        assert.ok(Math.abs((d.queueSeconds[0] ?? 0) - 2) < 0.01);
        await store.ping();
      }),
    );

    it(
      "queues submitted tasks only, never the runs cores registered for themselves",
      withStore(async (store) => {
        await store.createTask(newTask("q-api"), submitted("q-api"));
        const core = await store.createTask(newTask("q-core", { origin: "core" }), submitted("q-core"));
        assert.equal(core.record.task.origin, "core");
        assert.equal((await store.getTask("q-api")).record?.task.origin, "api", "the default origin");
        assert.deepEqual(
          (await store.pendingQueue(10)).map((r) => r.task.id),
          ["q-api"],
        );
      }),
    );

    it(
      "keeps the stream records of core-only runs: open, renewed, ended, stale, and gone when the run ends",
      withStore(async (store) => {
        const running = async (id: string, daemonId = "") => {
          await store.createTask(newTask(id, { origin: "core" }), submitted(id));
          const { record } = await store.getTask(id);
          assert.ok(record);
          await store.updateTask(
            id,
            { status: TaskStatus.PENDING, version: record.version },
            { status: TaskStatus.RUNNING, daemonId },
            [],
          );
        };
        for (const id of ["c-open", "c-ended", "c-stale", "c-daemon"]) await running(id);
        await running("c-none");
        await store.coreStreamsOpen(["c-open", "c-ended", "c-stale"]);
        await store.coreStreamEnded("c-ended", "canceled");
        const now = Date.now();
        // Nothing stale yet: only the ended stream is listed.
        let runs = await store.disconnectedCoreRuns(new Date(now - 60_000), 10);
        assert.deepEqual(
          runs.map((r) => [r.record.task.id, r.end]),
          [["c-ended", "canceled"]],
        );
        assert.ok(Math.abs((runs[0]?.since.getTime() ?? 0) - now) < 5000, "ended about now");
        // Records renewed before `staleBefore` are listed as stale, with their renewal time.
        runs = await store.disconnectedCoreRuns(new Date(now + 60_000), 10);
        assert.deepEqual(
          runs.map((r) => [r.record.task.id, r.end]),
          [
            ["c-open", "stale"],
            ["c-ended", "canceled"],
            ["c-stale", "stale"],
          ],
        );
        // A renewal reopens an ended stream (the core reconnected).
        await store.coreStreamsOpen(["c-ended"]);
        runs = await store.disconnectedCoreRuns(new Date(now - 60_000), 10);
        assert.deepEqual(runs, []);
        // Runs with a record are left to these records, not to the orphan sweep; the run without one
        // (and daemon runs) still are orphans.
        const orphans = await store.orphanedTasks(new Date(), 1000, 10);
        assert.deepEqual(
          orphans.map((o) => o.record.task.id),
          ["c-daemon", "c-none"],
        );
        // A run that ends forgets its record.
        const { record } = await store.getTask("c-stale");
        assert.ok(record);
        await store.updateTask(
          "c-stale",
          { status: TaskStatus.RUNNING, version: record.version },
          { status: TaskStatus.COMPLETED },
          [],
        );
        await store.coreStreamEnded("c-open", "dropped");
        runs = await store.disconnectedCoreRuns(new Date(now + 60_000), 10);
        assert.deepEqual(
          runs.map((r) => [r.record.task.id, r.end]),
          [
            ["c-open", "dropped"],
            ["c-ended", "stale"],
          ],
        );
      }),
    );

    it(
      "creates several tasks at once with their dependencies, or none when an id is taken",
      withStore(async (store) => {
        await store.createTask(newTask("root", { workflowId: "wf" }), submitted("root"));
        const made = await store.createTasks(
          [
            newTask("w1", { status: TaskStatus.WAITING, dependsOn: ["root"], depth: 1, workflowId: "wf" }),
            newTask("w2", {
              status: TaskStatus.WAITING,
              dependsOn: ["root", "w1"],
              depth: 2,
              workflowId: "wf",
              retryOf: "old",
              limitHosts: ["web2"],
            }),
          ],
          [submitted("w1"), submitted("w2")],
        );
        assert.ok(made.created);
        assert.deepEqual(
          made.events.map((e) => [e.sequence, e.taskId]),
          [
            [2n, "w1"],
            [3n, "w2"],
          ],
        );
        for (const rec of made.records) {
          const { record } = await store.getTask(rec.task.id);
          assert.deepEqual(rec, record, "the created record is the one stored");
        }
        const w2 = (await store.getTask("w2")).record?.task;
        assert.deepEqual(
          [w2?.dependsOn, w2?.workflowId, w2?.retryOf, w2?.limitHosts, w2?.status],
          [["root", "w1"], "wf", "old", ["web2"], TaskStatus.WAITING],
        );
        const root = (await store.getTask("root")).record;
        assert.deepEqual(root?.task.dependents, ["w1", "w2"], "dependents in the order stored");
        assert.equal(root?.version, 1, "a new dependent does not change the task's version");
        assert.deepEqual((await store.getTask("w1")).record?.task.dependents, ["w2"]);

        // An id taken: nothing of the call is stored, the taken task comes back.
        const clash = await store.createTasks(
          [newTask("w3"), newTask("w1", { type: "other" })],
          [submitted("w3"), submitted("w1")],
        );
        assert.equal(clash.created, false);
        assert.deepEqual(clash.created ? [] : clash.taken.map((r) => [r.task.id, r.task.type]), [
          ["w1", "playbook"],
        ]);
        assert.equal((await store.getTask("w3")).record, undefined);
        assert.equal((await store.readEvents({ afterSequence: 0n, limit: 10 })).length, 3);

        const states = await store.taskStates(["w2", "root", "missing"]);
        assert.deepEqual(states.map((s) => [s.id, s.status, s.depth]).sort(), [
          ["root", TaskStatus.PENDING, 0],
          ["w2", TaskStatus.WAITING, 2],
        ]);
        // Listing by workflow and by label; unfinished leaves ended tasks out.
        const wf = await store.listTasks({ limit: 10, offset: 0, order: "oldest", workflowId: "wf" });
        assert.deepEqual(
          wf.records.map((r) => r.task.id),
          ["root", "w1", "w2"],
        );
        const labeled = await store.listTasks({
          limit: 10,
          offset: 0,
          order: "oldest",
          label: { key: "owner", value: "contract" },
        });
        assert.equal(labeled.total, 3);
        const none = await store.listTasks({
          limit: 10,
          offset: 0,
          order: "oldest",
          label: { key: "owner", value: "x" },
        });
        assert.equal(none.total, 0);
      }),
    );

    it(
      "finds waiting tasks whose dependencies all ended",
      withStore(async (store) => {
        await store.createTask(newTask("d1"), submitted("d1"));
        await store.createTask(newTask("d2"), submitted("d2"));
        await store.createTasks(
          [
            newTask("wa", { status: TaskStatus.WAITING, dependsOn: ["d1"], depth: 1 }),
            newTask("wb", { status: TaskStatus.WAITING, dependsOn: ["d1", "d2"], depth: 1 }),
          ],
          [submitted("wa"), submitted("wb")],
        );
        assert.deepEqual(await store.settledWaiting(10), []);
        const d1 = (await store.getTask("d1")).record;
        assert.ok(d1);
        await store.updateTask(
          "d1",
          { status: TaskStatus.PENDING, version: d1.version },
          { status: TaskStatus.CANCELED },
          [],
        );
        assert.deepEqual(
          (await store.settledWaiting(10)).map((r) => r.task.id),
          ["wa"],
        );
        const d2 = (await store.getTask("d2")).record;
        assert.ok(d2);
        await store.updateTask(
          "d2",
          { status: TaskStatus.PENDING, version: d2.version },
          { status: TaskStatus.SKIPPED },
          [],
        );
        assert.deepEqual(
          (await store.settledWaiting(10)).map((r) => r.task.id),
          ["wa", "wb"],
        );
        assert.deepEqual(
          (await store.settledWaiting(1)).map((r) => r.task.id),
          ["wa"],
        );
        const unfinished = await store.listTasks({ limit: 10, offset: 0, order: "oldest", unfinished: true });
        assert.deepEqual(
          unfinished.records.map((r) => r.task.id),
          ["wa", "wb"],
        );
      }),
    );

    it(
      "keeps everything across close and reopen, and continues the sequence",
      withStore(async (store, reopen) => {
        await store.createTask(newTask("p1"), submitted("p1"));
        await store.appendEvents([{ type: "note", taskId: "p1", data: { k: "v" } }]);
        await store.close();
        await assert.rejects(store.appendEvents([{ type: "x", taskId: "", data: {} }]));
        const again = await reopen();
        try {
          assert.equal((await again.getTask("p1")).record?.task.id, "p1");
          const more = await again.createTask(newTask("p2"), submitted("p2"));
          assert.equal(more.events[0]?.sequence, 3n);
          const events = await again.readEvents({ afterSequence: 0n, limit: 10 });
          assert.deepEqual(
            events.map((e) => [e.sequence, e.type]),
            [
              [1n, "task.submitted"],
              [2n, "note"],
              [3n, "task.submitted"],
            ],
          );
        } finally {
          await again.close();
        }
      }),
    );
  });
}
