/**
 * Runs the TaskStore contract on the PostgreSQL backend, each test in a fresh schema of the local
 * server, plus what is particular to PostgreSQL: migrations when several gateways open a schema at
 * once, refusing a newer schema, schemas kept apart, and event sequences that readers on any
 * gateway see in order, once, without gaps, while two stores (two pools, as two replicas) write.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import type { Event } from "../../gen/spage/core/common_pb.js";
import { TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { ChainVerifier } from "../src/domain/audit-chain.js";
import type { GatewayStore } from "../src/store/gateway-store.js";
import { appendEventRows } from "../src/store/postgres/postgres-events.js";
import { loadPostgresMigrations } from "../src/store/postgres/postgres-migrate.js";
import { openPostgresStore, type PostgresStoreLog } from "../src/store/postgres/postgres-store.js";
import type { NewTask } from "../src/store/task-store.js";
import { dropSchema, freshSchemaName, testDatabaseUrl, withTestDatabase } from "./helpers/postgres.js";
import { storeContract } from "./store-contract.js";

storeContract("postgres", async () => {
  const schema = freshSchemaName();
  const open = () => openPostgresStore({ url: testDatabaseUrl, schema });
  return { store: await open(), reopen: open, cleanup: () => dropSchema(schema) };
});

function newTask(id: string, over: Partial<NewTask> = {}): NewTask {
  return {
    id,
    type: "playbook",
    priority: TaskPriority.NORMAL,
    payload: { playbook: "site.yml" },
    metadata: {},
    requestHash: `hash-${id}`,
    status: TaskStatus.PENDING,
    timeoutSeconds: 0,
    ...over,
  };
}

const submitted = (id: string) => ({ type: "task.submitted", taskId: id, data: { status: "PENDING" } });

/** Opens `count` stores on one fresh schema, runs `fn`, then closes them and drops the schema. */
async function withStores(
  count: number,
  fn: (stores: GatewayStore[], schema: string) => Promise<void>,
): Promise<void> {
  const schema = freshSchemaName();
  const stores: GatewayStore[] = [];
  try {
    for (let i = 0; i < count; i++) stores.push(await openPostgresStore({ url: testDatabaseUrl, schema }));
    await fn(stores, schema);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await dropSchema(schema);
  }
}

/** Follows the event log like a watcher: reads after the last sequence seen until told to stop. */
function follow(store: GatewayStore, writing: () => boolean) {
  return (async () => {
    const seen: Event[] = [];
    const gaps: string[] = [];
    let after = 0n;
    for (;;) {
      // Decided before the read: a read that starts after the last write ended sees all of it.
      const last = !writing();
      const batch = await store.readEvents({ afterSequence: after, limit: 200 });
      for (const e of batch) {
        if (e.sequence !== after + 1n) gaps.push(`after ${after} the next event read was ${e.sequence}`);
        after = e.sequence;
        seen.push(e);
      }
      if (last && batch.length === 0) return { seen, gaps };
    }
  })();
}

describe("PostgreSQL specifics", () => {
  it("migrates an empty schema exactly once when three stores open it at the same moment", async () => {
    const schema = freshSchemaName();
    const reports: string[][] = [];
    const log: PostgresStoreLog = {
      info: (obj) => reports.push((obj as { applied: string[] }).applied),
      warn: () => {},
    };
    const opened = await Promise.allSettled(
      [0, 1, 2].map(() => openPostgresStore({ url: testDatabaseUrl, schema, log })),
    );
    const stores = opened.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    try {
      assert.deepEqual(
        opened.map((o) => o.status),
        ["fulfilled", "fulfilled", "fulfilled"],
        String(opened.find((o) => o.status === "rejected")?.reason),
      );
      const names = loadPostgresMigrations().map((m) => m.name);
      assert.deepEqual(reports, [names], "one store applied every migration, the others found nothing to do");
      const applied = await withTestDatabase(
        async (c) =>
          (await c.query(`SELECT version, name FROM ${schema}.schema_migrations ORDER BY version`)).rows,
      );
      assert.deepEqual(
        applied,
        loadPostgresMigrations().map((m) => ({ version: m.version, name: m.name })),
      );
      // All three work on the same tables and the same event counter.
      const created = await Promise.all(
        stores.map((s, i) => s.createTask(newTask(`m${i}`), submitted(`m${i}`))),
      );
      assert.deepEqual(created.map((c) => c.events[0]?.sequence).sort(), [1n, 2n, 3n]);
      assert.equal((await stores[0]?.listTasks({ limit: 10, offset: 0, order: "oldest" }))?.total, 3);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await dropSchema(schema);
    }
  });

  it("refuses a schema migrated by a newer gateway, naming both versions", async () => {
    const schema = freshSchemaName();
    try {
      await (await openPostgresStore({ url: testDatabaseUrl, schema })).close();
      await withTestDatabase((c) =>
        c.query(
          `INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES (999, '999_future.sql', 0)`,
        ),
      );
      const latest = loadPostgresMigrations().at(-1)?.version;
      await assert.rejects(openPostgresStore({ url: testDatabaseUrl, schema }), (err: Error) => {
        assert.match(err.message, /migrated by a newer gateway/);
        assert.match(err.message, /migration 999\b/);
        assert.match(err.message, new RegExp(`knows up to ${latest}\\b`));
        assert.match(err.message, new RegExp(schema));
        return true;
      });
    } finally {
      await dropSchema(schema);
    }
  });

  it("refuses a schema name that is not a plain lower-case identifier", async () => {
    for (const schema of ["Spage", "a-b", "1st", 'x"; DROP SCHEMA public; --', ""]) {
      await assert.rejects(
        openPostgresStore({ url: testDatabaseUrl, schema }),
        /invalid PostgreSQL schema name/,
      );
    }
  });

  it("counts the gateways sharing a schema and gives a lease to one holder at a time", async () => {
    await withStores(2, async ([a, b]) => {
      assert.ok(a && b);
      const since = () => new Date(Date.now() - 60_000);
      assert.equal(await a.replicaSeen?.("gw-a", since()), 1);
      assert.equal(await b.replicaSeen?.("gw-b", since()), 2);
      assert.equal(await a.replicaSeen?.("gw-a", since()), 2, "renewing does not count twice");
      assert.equal(
        await a.replicaSeen?.("gw-a", new Date(Date.now() + 1000)),
        1,
        "others not seen since are gone",
      );
      const soon = new Date(Date.now() + 60_000);
      assert.equal(await a.claimLease?.("sweeps", "gw-a", soon), true);
      assert.equal(await b.claimLease?.("sweeps", "gw-b", soon), false, "held by gw-a");
      assert.equal(await a.claimLease?.("sweeps", "gw-a", soon), true, "renewed by its holder");
      assert.equal(await a.claimLease?.("sweeps", "gw-a", new Date(Date.now() - 1)), true);
      assert.equal(await b.claimLease?.("sweeps", "gw-b", soon), true, "taken over once run out");
      assert.equal(await a.claimLease?.("sweeps", "gw-a", soon), false);
    });
  });

  it("a writer that commits late: a plain PostgreSQL sequence loses its event for a reader, the store's numbering does not", async () => {
    await withStores(1, async ([store], schema) => {
      assert.ok(store);
      const client = async () => {
        const c = new pg.Client({ connectionString: testDatabaseUrl, options: `-c search_path=${schema}` });
        await c.connect();
        return c;
      };
      const [slow, fast, reader] = [await client(), await client(), await client()];
      try {
        // Without the fix: sequence values come from a plain sequence, taken before commit.
        await reader.query("CREATE TABLE naive_events (sequence BIGSERIAL PRIMARY KEY, what TEXT NOT NULL)");
        await slow.query("BEGIN");
        await slow.query("INSERT INTO naive_events (what) VALUES ('slow')"); // takes 1, commits late
        await fast.query("INSERT INTO naive_events (what) VALUES ('fast')"); // takes 2, commits now
        let cursor = 0;
        const seen: string[] = [];
        const follow = async () => {
          const rows = (
            await reader.query(
              "SELECT sequence, what FROM naive_events WHERE sequence > $1 ORDER BY sequence",
              [cursor],
            )
          ).rows as { sequence: string; what: string }[];
          for (const r of rows) {
            seen.push(r.what);
            cursor = Number(r.sequence);
          }
        };
        await follow();
        await slow.query("COMMIT");
        await follow();
        assert.deepEqual(seen, ["fast"], "the reader moved past 1 before it committed and never sees it");

        // The store: the slow writer holds the counter until it commits, the fast one waits for it.
        const now = Date.now();
        await slow.query("BEGIN");
        await appendEventRows(slow, [{ type: "slow", taskId: "", data: {} }], now);
        const fastDone = store.appendEvents([{ type: "fast", taskId: "", data: {} }]);
        await new Promise((r) => setTimeout(r, 200));
        const early = await store.readEvents({ afterSequence: 0n, limit: 10 });
        assert.deepEqual(
          early.map((e) => e.type),
          [],
          "nothing is visible before the first writer commits",
        );
        await slow.query("COMMIT");
        await fastDone;
        const events = await store.readEvents({ afterSequence: 0n, limit: 10 });
        assert.deepEqual(
          events.map((e) => `${e.sequence} ${e.type}`),
          ["1 slow", "2 fast"],
          "commit order is sequence order",
        );
      } finally {
        await slow.query("ROLLBACK").catch(() => {});
        for (const c of [slow, fast, reader]) await c.end();
      }
    });
  });

  it("group-commits creations: repeats of an id in one batch and ids taken before are answered as repeats", async () => {
    await withStores(1, async ([store]) => {
      assert.ok(store);
      await store.createTask(newTask("taken-before"), {
        type: "task.submitted",
        taskId: "taken-before",
        data: {},
      });
      const ids = Array.from({ length: 10 }, (_, i) => `batch-${i}`);
      const calls = [...ids, ...ids, ...ids, "taken-before"].map((id) =>
        store.createTask(newTask(id), { type: "task.submitted", taskId: id, data: {} }),
      );
      const results = await Promise.all(calls);
      for (const id of ids) {
        const mine = results.filter((r) => r.record.task.id === id);
        assert.equal(mine.filter((r) => r.created).length, 1, `${id} created once`);
        assert.equal(new Set(mine.map((r) => r.record.position)).size, 1, `${id}: one record for all`);
      }
      assert.equal(results.at(-1)?.created, false, "an id taken before stays taken");
      const events = await store.readEvents({ afterSequence: 0n, limit: 100 });
      assert.deepEqual(
        events.map((e) => e.sequence),
        Array.from({ length: 11 }, (_, i) => BigInt(i + 1)),
        "one event per created task, gap-free",
      );
      assert.equal(new Set(events.map((e) => e.taskId)).size, 11);
    });
  });

  it("keeps gateways on different schemas of one database apart", async () => {
    await withStores(1, async ([first]) => {
      await withStores(1, async ([second]) => {
        assert.ok(first && second);
        await first.createTask(newTask("same-id", { type: "first" }), submitted("same-id"));
        const other = await second.createTask(newTask("same-id", { type: "second" }), submitted("same-id"));
        assert.equal(other.created, true);
        assert.equal(other.events[0]?.sequence, 1n, "each schema numbers its own events");
        assert.equal((await first.getTask("same-id")).record?.task.type, "first");
        assert.equal((await second.getTask("same-id")).record?.task.type, "second");
        await first.appendAudit([
          {
            time: new Date(),
            principal: "p",
            keyId: "",
            clientAddress: "",
            method: "m",
            taskId: "",
            code: "ok",
            requestId: "",
            detail: "",
          },
        ]);
        assert.equal((await second.listAudit({ afterSequence: 0n, limit: 10 })).length, 0);
      });
    });
  });

  it("commits a created task's audit record with the task, and none for a taken id", async () => {
    await withStores(2, async ([a, b]) => {
      assert.ok(a && b);
      const audit = (taskId: string) => ({
        time: new Date(),
        principal: "key:0123456789abcdef",
        keyId: "0123456789abcdef",
        clientAddress: "127.0.0.1",
        method: "spage.api.SpageAPI/SubmitTask",
        taskId,
        code: "ok",
        requestId: `req-${taskId}`,
        detail: "",
      });
      const event = { type: "task.submitted", taskId: "t1", data: {} };
      // The same id through two stores at once: one creates it, the other finds it.
      const both = await Promise.all([
        a.createTask(newTask("t1"), event, audit("t1")),
        b.createTask(newTask("t1"), event, audit("t1")),
      ]);
      assert.deepEqual(both.map((r) => r.created).sort(), [false, true]);
      await b.createTask(newTask("t2"), { ...event, taskId: "t2" }, audit("t2"));
      const records = await a.listAudit({ afterSequence: 0n, limit: 10 });
      assert.deepEqual(
        records.map((r) => [r.sequence, r.taskId, r.requestId]),
        [
          [1n, "t1", "req-t1"],
          [2n, "t2", "req-t2"],
        ],
      );
      const v = new ChainVerifier();
      for (const r of records) assert.equal(v.add(r), true, v.broken?.reason);
      assert.deepEqual(
        (await a.readEvents({ afterSequence: 0n, limit: 10 })).map((e) => [e.sequence, e.taskId]),
        [
          [1n, "t1"],
          [2n, "t2"],
        ],
      );
    });
  });

  it("hands out event sequences in commit order across two stores: readers on both see every event once, in order, with no gap", async () => {
    await withStores(2, async ([a, b]) => {
      assert.ok(a && b);
      const written = new Map<bigint, Event>();
      const keep = (events: readonly Event[]) => {
        for (const e of events) {
          assert.ok(!written.has(e.sequence), `sequence ${e.sequence} handed out twice`);
          written.set(e.sequence, e);
        }
      };
      const shared = ["shared-1", "shared-2", "shared-3"];
      for (const id of shared) keep((await a.createTask(newTask(id), submitted(id))).events);

      let writing = true;
      const readers = [follow(a, () => writing), follow(b, () => writing)];
      // Six writers per store, each creating tasks of its own, appending to its own and to the
      // shared tasks, and racing the others with conditional updates of the shared tasks.
      const writer = async (store: GatewayStore, name: string) => {
        for (let i = 0; i < 25; i++) {
          const own = `${name}-${i}`;
          keep((await store.createTask(newTask(own), submitted(own))).events);
          const target = shared[i % shared.length] ?? "";
          keep(
            await store.appendEvents([
              { type: "note", taskId: target, data: { by: own } },
              { type: "note", taskId: own, data: { n: String(i) } },
            ]),
          );
          const { record } = await store.getTask(target);
          assert.ok(record);
          const won = await store.updateTask(
            target,
            { status: record.task.status, version: record.version },
            { progress: i },
            [{ type: "task.progress", taskId: target, data: { by: own } }],
          );
          if (won) keep(won.events);
        }
      };
      try {
        await Promise.all(
          Array.from({ length: 6 }, (_, w) => [writer(a, `a${w}`), writer(b, `b${w}`)]).flat(),
        );
      } finally {
        writing = false;
      }
      const results = await Promise.all(readers);

      const all = [...written.keys()].sort((x, y) => (x < y ? -1 : 1));
      assert.ok(all.length > 12 * 25 * 3, `${all.length} events written`);
      assert.deepEqual(
        all,
        all.map((_, i) => BigInt(i + 1)),
        "the sequences handed out are 1..n",
      );
      for (const [i, { seen, gaps }] of results.entries()) {
        assert.deepEqual(gaps, [], `reader ${i} never skipped a sequence`);
        assert.deepEqual(
          seen.map((e) => e.sequence),
          all,
          `reader ${i} saw every event exactly once`,
        );
        for (const e of seen)
          assert.deepEqual(e, written.get(e.sequence), `reader ${i}: event ${e.sequence}`);
      }
      assert.equal((await b.stats()).lastSequence, BigInt(all.length));
      assert.equal((await a.getTask("shared-1")).sequence, BigInt(all.length));
    });
  });

  it("returns with a task the sequence it reflects, while another store updates it", async () => {
    await withStores(2, async ([a, b]) => {
      assert.ok(a && b);
      await a.createTask(newTask("watched"), submitted("watched"));
      let writing = true;
      const writes = (async () => {
        try {
          for (let i = 0; i < 150; i++) {
            const { record } = await a.getTask("watched");
            assert.ok(record);
            await a.updateTask(
              "watched",
              { status: record.task.status, version: record.version },
              { progress: i % 100 },
              [{ type: "task.progress", taskId: "watched", data: { version: String(record.version + 1) } }],
            );
          }
        } finally {
          writing = false;
        }
      })();
      // What B reads is the task as of its sequence: the last event at or before that sequence is
      // the update that made the version read, and the first after it is a later one.
      const reader: GatewayStore = b;
      let reads = 0;
      while (writing) {
        const { record, sequence } = await reader.getTask("watched");
        assert.ok(record);
        const events = await reader.readEvents({ afterSequence: 0n, taskId: "watched", limit: 1000 });
        const upTo = events.filter((e) => e.sequence <= sequence);
        const lastVersion = upTo.at(-1)?.data.version ?? "1";
        assert.equal(lastVersion, String(record.version), `at sequence ${sequence}`);
        const next = events.find((e) => e.sequence > sequence);
        if (next) assert.ok(Number(next.data.version) > record.version);
        reads++;
      }
      await writes;
      assert.ok(reads > 0);
    });
  });
});
