/**
 * Tasks and their event log on PostgreSQL: creation, conditional updates, listings, event reads and
 * the queries the dispatcher and sweeps run. Every store call is one transaction on one pooled
 * connection (or one statement, which is its own transaction), creations one batch of several
 * (postgres-create-batch.ts); a write that appends events takes
 * their sequence numbers as its last step (postgres-events.ts). Reads that return the last committed
 * sequence read it in the same statement as the rows, so both come from one snapshot.
 */
import { TaskStatus } from "../../../../gen/spage/core/common_pb.js";
import type { AuditFields } from "../../domain/audit-chain.js";
import { terminalStates } from "../../domain/task-state.js";
import { tracedWrite } from "../../tracing/store-spans.js";
import {
  attemptsToJson,
  type EventRow,
  hostsToJson,
  rowToEvent,
  stepsToJson,
  taskColumnCount,
  taskColumns,
} from "../task-rows.js";
import type { NewTask, TaskPatch, TaskQuery, TaskStore } from "../task-store.js";
import { createTaskBatcher } from "./postgres-create-batch.js";
import { appendEventRows } from "./postgres-events.js";
import { named, namedArray, type PostgresDb } from "./postgres-pool.js";
import { taskRecordOf } from "./postgres-rows.js";

const activeStates = [TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.CANCELING].join(",");

const sql = {
  taskById: `SELECT ${taskColumns()} FROM tasks WHERE id = $1`,
  // The counter's row is always there: a missing task still returns the sequence.
  taskWithSequence: `SELECT ${taskColumns("t")}, c.last FROM event_counter c LEFT JOIN tasks t ON t.id = $1`,
  forgetCoreStream: "DELETE FROM core_streams WHERE task_id = $1",
  lastSequence: "SELECT last FROM event_counter",
  countByStatus: "SELECT status, count(*) AS n FROM tasks GROUP BY status",
  recent:
    "SELECT created_at, started_at, completed_at FROM tasks WHERE completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $1",
  queue: `SELECT ${taskColumns()} FROM tasks WHERE status = ${TaskStatus.PENDING} AND origin = 'api'
   ORDER BY priority DESC, position LIMIT $1`,
  due: `SELECT ${taskColumns()} FROM tasks
   WHERE deadline_at IS NOT NULL AND deadline_at <= $1 AND status IN (${activeStates})
   ORDER BY deadline_at LIMIT $2`,
  dueCancels: `SELECT ${taskColumns()} FROM tasks
   WHERE cancel_deadline IS NOT NULL AND cancel_deadline <= $1 AND status = ${TaskStatus.CANCELING}
   ORDER BY cancel_deadline LIMIT $2`,
  ofDaemon: `SELECT ${taskColumns()} FROM tasks WHERE daemon_id = $1 AND status IN (${activeStates}) ORDER BY position`,
};

/** The task and event methods of TaskStore. */
export type PostgresTaskMethods = Pick<
  TaskStore,
  | "createTask"
  | "getTask"
  | "updateTask"
  | "appendEvents"
  | "listTasks"
  | "readEvents"
  | "pendingQueue"
  | "dueDeadlines"
  | "dueCancels"
  | "tasksOfDaemon"
  | "stats"
  | "recentDurations"
>;

/** Creates the task and event methods on an open, migrated database. */
export function createPostgresTasks(db: PostgresDb): PostgresTaskMethods {
  const tasks = async (text: string, values: unknown[]) =>
    (await db.pool.query(namedArray(text, values))).rows.map(taskRecordOf);
  const create = createTaskBatcher(db);

  return {
    // Creations are group-committed: see postgres-create-batch.ts.
    createTask(t: NewTask, event, audit?: AuditFields) {
      if (t.dependsOn && t.dependsOn.length > 0)
        throw new Error("a task with dependencies goes through createTasks");
      return create(t, event, audit);
    },

    async getTask(id) {
      const row = (await db.pool.query(namedArray(sql.taskWithSequence, [id]))).rows[0];
      if (!row) throw new Error("the event counter's row is missing");
      const sequence = BigInt(row[taskColumnCount] as number);
      // Columns of the missing task are all null; the id column is never null otherwise.
      const record = row[1] === null ? undefined : taskRecordOf(row);
      return { record, sequence };
    },

    updateTask(id, expected, patch: TaskPatch, events) {
      const now = Date.now();
      const values: unknown[] = [id, expected.status, expected.version, now];
      const sets: string[] = ["version = version + 1", "updated_at = $4"];
      const set = (column: string, value: unknown) => {
        values.push(value);
        sets.push(`${column} = $${values.length}`);
      };
      if (patch.status !== undefined) set("status", patch.status);
      if (patch.progress !== undefined) set("progress", patch.progress);
      if (patch.payload) set("payload", JSON.stringify(patch.payload));
      if (patch.metadata) set("metadata", JSON.stringify(patch.metadata));
      if (patch.result) set("result", JSON.stringify(patch.result));
      if (patch.error !== undefined) set("error", patch.error);
      if (patch.hosts) set("hosts", hostsToJson(patch.hosts));
      if (patch.steps) set("steps", stepsToJson(patch.steps));
      if (patch.startedAt !== undefined) set("started_at", patch.startedAt?.getTime() ?? null);
      if (patch.completedAt !== undefined) set("completed_at", patch.completedAt?.getTime() ?? null);
      if (patch.deadlineAt !== undefined) set("deadline_at", patch.deadlineAt?.getTime() ?? null);
      if (patch.daemonId !== undefined) set("daemon_id", patch.daemonId);
      if (patch.attempt !== undefined) set("attempt", patch.attempt);
      if (patch.attempts) set("attempts", attemptsToJson(patch.attempts));
      if (patch.cancelDeadline !== undefined) set("cancel_deadline", patch.cancelDeadline?.getTime() ?? null);
      if (patch.outputSeq !== undefined) set("output_seq", patch.outputSeq);
      // A concurrent writer of the same task makes this wait for its end, then re-check the
      // condition on the committed row: exactly one writer of a version wins.
      const update = namedArray(
        `UPDATE tasks SET ${sets.join(", ")} WHERE id = $1 AND status = $2 AND version = $3 RETURNING ${taskColumns()}`,
        values,
      );
      const ends = patch.status !== undefined && terminalStates.has(patch.status);
      if (events.length === 0 && !ends) {
        // One statement: its own transaction.
        return tracedWrite("postgresql", "updateTask", () => db.pool.query(update)).then((res) => {
          const row = res.rows[0];
          return row ? { record: taskRecordOf(row), events: [] } : undefined;
        });
      }
      return db.transaction(async (client) => {
        const row = (await client.query(update)).rows[0];
        if (!row) return undefined;
        if (ends) await client.query(named(sql.forgetCoreStream, [id]));
        const stored = await appendEventRows(client, events, now);
        return { record: taskRecordOf(row), events: stored };
      }, "updateTask");
    },

    appendEvents(events) {
      if (events.length === 0) return db.guard(async () => []);
      // One statement: its own transaction, so the counter is locked only for its commit.
      return tracedWrite("postgresql", "appendEvents", () => appendEventRows(db.pool, events, Date.now()));
    },

    async listTasks(q: TaskQuery) {
      const where: string[] = [];
      const values: unknown[] = [];
      const param = (value: unknown) => {
        values.push(value);
        return `$${values.length}`;
      };
      if (q.status !== undefined) where.push(`status = ${param(q.status)}`);
      if (q.type) where.push(`type = ${param(q.type)}`);
      if (q.priority !== undefined) where.push(`priority = ${param(q.priority)}`);
      if (q.createdAfter) where.push(`created_at >= ${param(q.createdAfter.getTime())}`);
      if (q.createdBefore) where.push(`created_at < ${param(q.createdBefore.getTime())}`);
      if (q.idPrefix) where.push(`starts_with(id, ${param(q.idPrefix)})`);
      if (q.workflowId) where.push(`workflow_id = ${param(q.workflowId)}`);
      if (q.label) where.push(`(metadata::jsonb ->> ${param(q.label.key)}) = ${param(q.label.value)}`);
      if (q.unfinished && q.status === undefined)
        where.push(`status NOT IN (${[...terminalStates].join(",")})`);
      const pageWhere = [...where];
      const direction = q.order === "newest" ? "DESC" : "ASC";
      if (q.afterPosition !== undefined)
        pageWhere.push(`position ${q.order === "newest" ? "<" : ">"} ${param(q.afterPosition)}`);
      const filter = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
      const pageFilter = pageWhere.length > 0 ? `WHERE ${pageWhere.join(" AND ")}` : "";
      const limit = param(q.limit + 1);
      const offset = param(q.afterPosition === undefined ? q.offset : 0);
      // One statement, so the page, the total and the sequence come from one snapshot. With no
      // task on the page, the one row left has only the total and the sequence.
      const text = `SELECT p.*, n.total, c.last
   FROM event_counter c
   CROSS JOIN (SELECT count(*) AS total FROM tasks ${filter}) n
   LEFT JOIN LATERAL (SELECT ${taskColumns("", false)} FROM tasks ${pageFilter}
                      ORDER BY position ${direction} LIMIT ${limit} OFFSET ${offset}) p ON true
   ORDER BY p.position ${direction}`;
      const rows = (await db.pool.query(namedArray(text, values))).rows;
      const first = rows[0];
      if (!first) throw new Error("the event counter's row is missing");
      const total = first[taskColumnCount] as number;
      const sequence = BigInt(first[taskColumnCount + 1] as number);
      const records = rows.filter((r) => r[0] !== null).map(taskRecordOf);
      const more = records.length > q.limit;
      return { records: records.slice(0, q.limit), total, sequence, more };
    },

    async readEvents(q) {
      const values: unknown[] = [q.afterSequence.toString()];
      const where = ["sequence > $1"];
      if (q.taskId) {
        values.push(q.taskId);
        where.push(`task_id = $${values.length}`);
      }
      if (q.types && q.types.size > 0) {
        values.push([...q.types]);
        where.push(`type = ANY($${values.length}::text[])`);
      }
      values.push(q.limit);
      const text = `SELECT sequence, type, task_id, data, created_at FROM events WHERE ${where.join(" AND ")}
   ORDER BY sequence LIMIT $${values.length}`;
      const rows = (await db.pool.query<EventRow>(named(text, values))).rows;
      return rows.map(rowToEvent);
    },

    pendingQueue: (limit) => tasks(sql.queue, [limit]),

    dueDeadlines: (now, limit) => tasks(sql.due, [now.getTime(), limit]),

    dueCancels: (now, limit) => tasks(sql.dueCancels, [now.getTime(), limit]),

    tasksOfDaemon: (daemonId) => tasks(sql.ofDaemon, [daemonId]),

    async stats() {
      const [counts, last] = await Promise.all([
        db.pool.query<{ status: number; n: number }>(named(sql.countByStatus)),
        db.pool.query<{ last: number }>(named(sql.lastSequence)),
      ]);
      return {
        tasksByStatus: new Map(counts.rows.map((r) => [r.status as TaskStatus, r.n])),
        lastSequence: BigInt(last.rows[0]?.last ?? 0),
      };
    },

    async recentDurations(limit) {
      const rows = (
        await db.pool.query<{ created_at: number; started_at: number | null; completed_at: number }>(
          named(sql.recent, [limit]),
        )
      ).rows;
      const queueSeconds: number[] = [];
      const runSeconds: number[] = [];
      for (const r of rows) {
        if (r.started_at === null) continue;
        queueSeconds.push((r.started_at - r.created_at) / 1000);
        runSeconds.push((r.completed_at - r.started_at) / 1000);
      }
      return { queueSeconds, runSeconds };
    },
  };
}
