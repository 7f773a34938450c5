/**
 * How a plain server reads a task for GetTaskStatus, written from the database schema and the
 * contract alone, with no code of the gateway's: the running gateway's database file
 * (SPAGE_BENCH_DB) opened read-only with better-sqlite3, one prepared `SELECT * FROM tasks WHERE
 * id = ?` a call (with the log's last sequence, which the answer carries), the JSON columns parsed,
 * and the fields of the answer taken from the row. `plainTaskMessage` builds the answer as a
 * generated message (for the HTTP/1.1 peer, which encodes with @bufbuild/protobuf); the grpc-js
 * peer hands the plain object of `plainTaskObject` to @grpc/proto-loader's serializer.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import Database from "better-sqlite3";
import { type GetTaskStatusResponse, GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";

/** A tasks row as `SELECT *` returns it (the columns the answer needs), plus the last sequence. */
export interface PlainTaskRow {
  readonly id: string;
  readonly type: string;
  readonly priority: number;
  readonly status: number;
  readonly progress: number;
  readonly payload: string;
  readonly metadata: string;
  readonly result: string;
  readonly error: string;
  readonly hosts: string;
  readonly timeout_seconds: number;
  readonly created_at: number;
  readonly updated_at: number;
  readonly started_at: number | null;
  readonly completed_at: number | null;
  readonly deadline_at: number | null;
  readonly cancel_deadline: number | null;
  readonly daemon_id: string;
  readonly attempt: number;
  readonly max_attempts: number;
  readonly on_lost: string;
  readonly attempts: string;
  readonly origin: string;
  readonly owner: string;
  readonly era: string;
  readonly steps: string;
  readonly depends_on: string;
  readonly dependents: string;
  readonly workflow_id: string;
  readonly retry_of: string;
  readonly limit_hosts: string;
  readonly last_sequence: number | null;
}

/** Reads one task row by id, or undefined. */
export type PlainTaskRead = (id: string) => PlainTaskRow | undefined;

/** Opens the database in SPAGE_BENCH_DB read-only and prepares the one statement. */
export function openPlainTaskRead(): { read: PlainTaskRead; close(): void } {
  const path = process.env.SPAGE_BENCH_DB;
  if (!path) throw new Error("SPAGE_BENCH_DB is not set");
  const db = new Database(path, { readonly: true, fileMustExist: true });
  const stmt = db.prepare(
    "SELECT *, (SELECT MAX(sequence) FROM events) AS last_sequence FROM tasks WHERE id = ?",
  );
  return { read: (id) => stmt.get(id) as PlainTaskRow | undefined, close: () => db.close() };
}

/** A task id as the contract allows it: 1 to 128 printable ASCII characters. */
export const validTaskId = (id: string): boolean => /^[\x21-\x7e]{1,128}$/.test(id);

const list = (json: string): unknown[] => (json === "[]" ? [] : (JSON.parse(json) as unknown[]));
const seconds = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

interface StoredAttempt {
  number: number;
  daemonId: string;
  assignedAt?: number;
  startedAt?: number;
  endedAt?: number;
  outcome: string;
  error: string;
}

/**
 * The task's fields from a row, timestamps made by `ts` (undefined for an unset column, so the
 * field stays absent in either encoding).
 */
function taskFields<T>(r: PlainTaskRow, ts: (ms: number) => T) {
  const at = (ms: number | null | undefined) => (ms === null || ms === undefined ? undefined : ts(ms));
  return {
    id: r.id,
    type: r.type,
    priority: r.priority,
    payload: JSON.parse(r.payload) as Record<string, string>,
    status: r.status,
    progress: r.progress,
    result: JSON.parse(r.result) as Record<string, string>,
    error: r.error,
    createdAt: at(r.created_at),
    updatedAt: at(r.updated_at),
    startedAt: at(r.started_at),
    completedAt: at(r.completed_at),
    deadlineAt: at(r.deadline_at),
    cancelDeadline: at(r.cancel_deadline),
    hosts: list(r.hosts) as never,
    timeoutSeconds: r.timeout_seconds,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    daemonId: r.daemon_id,
    attempt: r.attempt,
    maxAttempts: r.max_attempts,
    onLost: r.on_lost,
    attempts: (list(r.attempts) as StoredAttempt[]).map((x) => ({
      ...x,
      assignedAt: at(x.assignedAt),
      startedAt: at(x.startedAt),
      endedAt: at(x.endedAt),
    })),
    origin: r.origin,
    owner: r.owner,
    steps: list(r.steps) as never,
    era: r.era,
    dependsOn: list(r.depends_on) as string[],
    dependents: list(r.dependents) as string[],
    workflowId: r.workflow_id,
    retryOf: r.retry_of,
    limitHosts: list(r.limit_hosts) as string[],
  };
}

/** The answer as a plain object, in @grpc/proto-loader's shape (camelCase, timestamps as objects). */
export function plainTaskObject(r: PlainTaskRow): Record<string, unknown> {
  return { task: taskFields(r, seconds), sequence: r.last_sequence ?? 0 };
}

/** The answer as a generated message. */
export function plainTaskMessage(r: PlainTaskRow): GetTaskStatusResponse {
  return create(GetTaskStatusResponseSchema, {
    sequence: BigInt(r.last_sequence ?? 0),
    task: taskFields(r, timestampFromMs),
  });
}
