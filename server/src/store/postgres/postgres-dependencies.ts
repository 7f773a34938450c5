/**
 * Several tasks created at once (a workflow, with dependencies among them and on stored tasks) and
 * the reads that resolve dependencies, on PostgreSQL. A createTasks call is one transaction: its
 * rows go in in the order given (queue order), the dependencies they name are locked in id order
 * (so two calls naming the same ones cannot deadlock) and get the new ids appended to `dependents`,
 * then audit records and events, in the store's lock order. An id taken (before or by a concurrent
 * call) rolls the whole call back.
 */
import { TaskStatus } from "../../../../gen/spage/core/common_pb.js";
import { terminalStates } from "../../domain/task-state.js";
import { linkBatchDependents, newTaskColumns, newTaskRecord, taskColumns } from "../task-rows.js";
import type { CreatedTasks, TaskRecord, TaskStore } from "../task-store.js";
import { appendAuditRows } from "./postgres-audit.js";
import { insertTasksSql, taskInsertValues } from "./postgres-create-batch.js";
import { appendEventRows } from "./postgres-events.js";
import { named, namedArray, type PostgresDb, type Queryable } from "./postgres-pool.js";
import { taskRecordOf } from "./postgres-rows.js";

const ended = [...terminalStates].join(",");

const sql = {
  byIds: `SELECT ${taskColumns()} FROM tasks WHERE id = ANY($1::text[])`,
  insert: insertTasksSql("r.ordinality"),
  lockDependencies: "SELECT id FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
  addDependents: `UPDATE tasks SET dependents = (tasks.dependents::jsonb || x.ids)::text
   FROM (SELECT u.dep, jsonb_agg(u.id ORDER BY u.n) AS ids
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(id, dep, n) GROUP BY u.dep) x
   WHERE tasks.id = x.dep`,
  states: "SELECT id, status, depth FROM tasks WHERE id = ANY($1::text[])",
  settledWaiting: `SELECT ${taskColumns()} FROM tasks t WHERE t.status = ${TaskStatus.WAITING}
   AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(t.depends_on::jsonb) j(id)
                   JOIN tasks d ON d.id = j.id WHERE d.status NOT IN (${ended}))
   ORDER BY t.position LIMIT $1`,
};

/** Thrown inside the transaction to roll it back when an id is taken. */
class Taken extends Error {
  constructor(readonly records: TaskRecord[]) {
    super("task ids taken");
  }
}

/** The dependency methods of TaskStore. */
export type PostgresDependencyMethods = Pick<TaskStore, "createTasks" | "taskStates" | "settledWaiting">;

/** Creates the dependency methods on an open, migrated database. */
export function createPostgresDependencies(db: PostgresDb): PostgresDependencyMethods {
  const byIds = async (q: Queryable, ids: string[]) =>
    (await q.query(namedArray(sql.byIds, [ids]))).rows.map(taskRecordOf);

  return {
    async createTasks(tasks, events, audit): Promise<CreatedTasks> {
      const ids = tasks.map((t) => t.id);
      const taken = await byIds(db.pool, ids);
      if (taken.length > 0) return { created: false, taken };
      try {
        return await db.transaction(async (client) => {
          const now = Date.now();
          const columns = tasks.map((t) => newTaskColumns(t, now));
          const inserted = await client.query<{ id: string; position: number }>(
            named(sql.insert, taskInsertValues(columns, now)),
          );
          if (inserted.rows.length < tasks.length) throw new Taken(await byIds(client, ids));
          const positionOf = new Map(inserted.rows.map((r) => [r.id, r.position]));
          const edges = tasks.flatMap((t) => (t.dependsOn ?? []).map((dep) => [t.id, dep] as const));
          if (edges.length > 0) {
            const deps = [...new Set(edges.map(([, dep]) => dep))];
            await client.query(named(sql.lockDependencies, [deps]));
            await client.query(
              named(sql.addDependents, [edges.map(([id]) => id), edges.map(([, dep]) => dep)]),
            );
          }
          if (audit && audit.length > 0) await appendAuditRows(client, [...audit]);
          const stored = await appendEventRows(client, events, now);
          const records = tasks.map((t, i) =>
            newTaskRecord(columns[i] as (typeof columns)[number], t, positionOf.get(t.id) as number),
          );
          linkBatchDependents(records);
          return { created: true as const, records, events: stored };
        }, "createTasks");
      } catch (err) {
        if (err instanceof Taken) return { created: false, taken: err.records };
        throw err;
      }
    },

    async taskStates(ids) {
      const rows = (
        await db.pool.query<{ id: string; status: number; depth: number }>(named(sql.states, [[...ids]]))
      ).rows;
      return rows.map((r) => ({ id: r.id, status: r.status as TaskStatus, depth: r.depth }));
    },

    async settledWaiting(limit) {
      return (await db.pool.query(namedArray(sql.settledWaiting, [limit]))).rows.map(taskRecordOf);
    },
  };
}
