/**
 * Conversion between SQLite rows and the wire types.
 */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Event,
  EventSchema,
  type HostSummary,
  HostSummarySchema,
  TaskSchema,
} from "../../../gen/spage/core/common_pb.js";
import type { TaskRecord } from "./task-store.js";

/** A row of the tasks table. */
export interface TaskRow {
  position: number;
  id: string;
  type: string;
  priority: number;
  status: number;
  progress: number;
  payload: string;
  metadata: string;
  result: string;
  error: string;
  hosts: string;
  timeout_seconds: number;
  request_hash: string;
  version: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  completed_at: number | null;
  deadline_at: number | null;
}

/** A row of the events table. */
export interface EventRow {
  sequence: number;
  type: string;
  task_id: string;
  data: string;
  created_at: number;
}

const ts = (ms: number | null): Timestamp | undefined => (ms === null ? undefined : timestampFromMs(ms));

/** Host summaries as stored: plain objects with the HostSummary field names. */
export type StoredHost = Omit<HostSummary, "$typeName" | "$unknown">;

/** Serialises host summaries for the hosts column. */
export function hostsToJson(hosts: readonly HostSummary[]): string {
  return JSON.stringify(
    hosts.map((h) => ({
      host: h.host,
      ok: h.ok,
      failed: h.failed,
      skipped: h.skipped,
      running: h.running,
      lastError: h.lastError,
      failedTask: h.failedTask,
    })),
  );
}

/** Builds a TaskRecord from a row. */
export function rowToRecord(row: TaskRow): TaskRecord {
  return {
    task: create(TaskSchema, {
      id: row.id,
      type: row.type,
      priority: row.priority,
      payload: JSON.parse(row.payload) as Record<string, string>,
      status: row.status,
      progress: row.progress,
      result: JSON.parse(row.result) as Record<string, string>,
      error: row.error,
      createdAt: ts(row.created_at),
      updatedAt: ts(row.updated_at),
      startedAt: ts(row.started_at),
      completedAt: ts(row.completed_at),
      hosts: (JSON.parse(row.hosts) as StoredHost[]).map((h) => create(HostSummarySchema, h)),
      timeoutSeconds: row.timeout_seconds,
      metadata: JSON.parse(row.metadata) as Record<string, string>,
      deadlineAt: ts(row.deadline_at),
    }),
    requestHash: row.request_hash,
    version: row.version,
    position: row.position,
  };
}

/** Builds an Event from a row. */
export function rowToEvent(row: EventRow): Event {
  return create(EventSchema, {
    id: `evt-${row.sequence}`,
    type: row.type,
    data: JSON.parse(row.data) as Record<string, string>,
    timestamp: timestampFromMs(row.created_at),
    sequence: BigInt(row.sequence),
    taskId: row.task_id,
  });
}
