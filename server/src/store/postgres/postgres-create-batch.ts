/**
 * Group commit of task creations on PostgreSQL. Every event-writing transaction holds the event
 * counter (and, with an audit record, the audit head) until its commit is flushed, so creations one
 * transaction each are bound by one flush apiece. Creations that arrive while one batch commits are
 * gathered into the next: one transaction inserts all their tasks (one statement), appends their
 * audit records and numbers their events once, and every call resolves after that commit. Within a
 * batch rows go in id order, so two gateways' batches inserting the same ids cannot deadlock.
 * A batch that fails fails each of its calls with the error; nothing of it is stored.
 */

import type { Context } from "@opentelemetry/api";
import type { Event } from "../../../../gen/spage/core/common_pb.js";
import type { AuditFields } from "../../domain/audit-chain.js";
import { captureContext } from "../../tracing/active-tracer.js";
import { endTransactionSpan, startTransactionSpan } from "../../tracing/store-spans.js";
import { type NewTaskColumns, newTaskColumns, newTaskRecord, taskColumns } from "../task-rows.js";
import type { NewEvent, NewTask, TaskRecord } from "../task-store.js";
import { appendAuditRows } from "./postgres-audit.js";
import { appendEventRows } from "./postgres-events.js";
import { named, namedArray, type PostgresDb } from "./postgres-pool.js";
import { taskRecordOf } from "./postgres-rows.js";

/** What createTask answers. */
export interface Created {
  readonly record: TaskRecord;
  readonly created: boolean;
  readonly events: Event[];
}

interface Pending {
  readonly task: NewTask;
  readonly event: NewEvent;
  readonly audit?: AuditFields;
  readonly resolve: (c: Created) => void;
  readonly reject: (err: unknown) => void;
  /** The trace context it was queued under; undefined while tracing is off. */
  readonly trace: Context | undefined;
}

/** Most creations in one transaction. */
const maxBatch = 128;

/**
 * Inserts the rows of `taskInsertValues` (arrays of one column each); `order` is 1 for id order,
 * `r.ordinality` for the order given.
 */
export const insertTasksSql = (
  order: string,
): string => `INSERT INTO tasks (id, type, priority, status, payload,
      metadata, request_hash, timeout_seconds, on_lost, max_attempts, origin, owner, era, workflow_id, depends_on,
      retry_of, limit_hosts, depth, created_at, updated_at)
  SELECT r.id, r.type, r.priority, r.status, r.payload, r.metadata, r.request_hash, r.timeout_seconds, r.on_lost,
    r.max_attempts, r.origin, r.owner, r.era, r.workflow_id, r.depends_on, r.retry_of, r.limit_hosts, r.depth,
    $19::bigint, $19::bigint
  FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::int[],
    $9::text[], $10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
    $17::text[], $18::int[]) WITH ORDINALITY AS r(id, type, priority, status, payload, metadata, request_hash,
    timeout_seconds, on_lost, max_attempts, origin, owner, era, workflow_id, depends_on, retry_of, limit_hosts,
    depth, ordinality)
  ORDER BY ${order}
  ON CONFLICT (id) DO NOTHING
  RETURNING id, position`;

const insertSql = insertTasksSql("1");

/** The values of insertTasksSql for these rows, inserted at `now`. */
export function taskInsertValues(rows: readonly NewTaskColumns[], now: number): unknown[] {
  const col = <K extends keyof NewTaskColumns>(k: K) => rows.map((c) => c[k]);
  return [
    col("id"),
    col("type"),
    col("priority"),
    col("status"),
    col("payload"),
    col("metadata"),
    col("request_hash"),
    col("timeout_seconds"),
    col("on_lost"),
    col("max_attempts"),
    col("origin"),
    col("owner"),
    col("era"),
    col("workflow_id"),
    col("depends_on"),
    col("retry_of"),
    col("limit_hosts"),
    col("depth"),
    now,
  ];
}

/** Creates tasks in batches; `create` resolves once its batch committed. */
export function createTaskBatcher(
  db: PostgresDb,
): (t: NewTask, event: NewEvent, audit?: AuditFields) => Promise<Created> {
  const queue: Pending[] = [];
  let running = false;

  const runBatch = async (batch: Pending[]) => {
    // One span for the batch's transaction: the first creation's call is its parent, the others
    // are linked (tracing/store-spans.ts).
    const span =
      batch[0]?.trace === undefined
        ? undefined
        : startTransactionSpan(
            "postgresql",
            batch.map(() => "createTask"),
            batch.map((p) => p.trace),
          );
    try {
      const results = await db.transaction((client) => createAll(client, batch));
      endTransactionSpan(span);
      for (const [i, p] of batch.entries()) p.resolve(results[i] as Created);
    } catch (err) {
      endTransactionSpan(span, err);
      for (const p of batch) p.reject(err);
    }
  };

  const drain = async () => {
    running = true;
    try {
      while (queue.length > 0) await runBatch(queue.splice(0, maxBatch));
    } finally {
      running = false;
    }
  };

  return (task, event, audit) =>
    new Promise<Created>((resolve, reject) => {
      queue.push({ task, event, audit, resolve, reject, trace: captureContext() });
      if (!running) void drain();
    });
}

/** Inserts a batch's tasks, audit records and events in one transaction; results in batch order. */
async function createAll(
  client: Parameters<Parameters<PostgresDb["transaction"]>[0]>[0],
  batch: Pending[],
): Promise<Created[]> {
  const now = Date.now();
  const columns = batch.map((p) => newTaskColumns(p.task, now));
  // One row per id (a repeat of an id in the batch is answered like a repeat after it).
  const firstOf = new Map<string, number>();
  columns.forEach((c, i) => {
    if (!firstOf.has(c.id)) firstOf.set(c.id, i);
  });
  const unique = [...firstOf.values()].map((i) => columns[i] as NewTaskColumns);
  const inserted = await client.query<{ id: string; position: number }>(
    named(insertSql, taskInsertValues(unique, now)),
  );
  const positionOf = new Map(inserted.rows.map((r) => [r.id, r.position]));
  // Ids that were taken already: their stored tasks, untouched.
  const taken = unique.filter((c) => !positionOf.has(c.id)).map((c) => c.id);
  const stored = new Map<string, TaskRecord>();
  if (taken.length > 0) {
    const rows = (
      await client.query(namedArray(`SELECT ${taskColumns()} FROM tasks WHERE id = ANY($1::text[])`, [taken]))
    ).rows;
    for (const row of rows) {
      const rec = taskRecordOf(row);
      stored.set(rec.task.id, rec);
    }
  }
  // The created ones, in batch order: their records, audit records and events.
  const made: number[] = [];
  const records = batch.map((p, i) => {
    const c = columns[i] as NewTaskColumns;
    const position = positionOf.get(c.id);
    if (position === undefined || firstOf.get(c.id) !== i) return undefined;
    made.push(i);
    return newTaskRecord(c, p.task, position);
  });
  // Lock order: the audit head, then the event counter (always last), in every transaction.
  const audits = made.flatMap((i) => {
    const a = batch[i]?.audit;
    return a ? [a] : [];
  });
  if (audits.length > 0) await appendAuditRows(client, audits);
  const events = await appendEventRows(
    client,
    made.map((i) => (batch[i] as Pending).event),
    now,
  );
  const eventOf = new Map(made.map((i, k) => [i, events[k] as Event]));
  return batch.map((p, i): Created => {
    const record = records[i];
    if (record) return { record, created: true, events: [eventOf.get(i) as Event] };
    // Taken before this batch, or by an earlier call of it.
    const first = firstOf.get(p.task.id) as number;
    const existing = stored.get(p.task.id) ?? records[first];
    if (!existing) throw new Error(`task ${p.task.id} vanished during insert`);
    return { record: existing, created: false, events: [] };
  });
}
