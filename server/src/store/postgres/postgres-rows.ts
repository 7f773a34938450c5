/**
 * Conversion between PostgreSQL rows and the store's records. Columns are encoded as the SQLite
 * store encodes them (times in milliseconds, maps and lists as JSON text), so tasks and events
 * convert with the SQLite store's own functions (sqlite-rows.ts); what differs is here: BIGINT
 * arrives as a number, flags are BOOLEAN.
 */
import pg from "pg";
import { rowToRecord, type TaskRow } from "../task-rows.js";
import type { DaemonRecord, TaskRecord } from "../task-store.js";

/**
 * BIGINT (int8) as a JS number: every BIGINT the store keeps (times in milliseconds, sequences,
 * positions, counts) stays far below 2^53. The driver's default is a string.
 */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`BIGINT ${text} is beyond what the store can read exactly`);
  return n;
}

/** The type parsers of the store's connections: the driver's, with BIGINT read as a number. */
export const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 && format !== "binary"
      ? parseInt8
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * The record of a task row as a statement selecting `taskColumns()` returns it in array mode (with
 * the same types as SQLite's rows: numbers, strings, null); columns selected after them are ignored.
 */
export function taskRecordOf(row: unknown[]): TaskRecord {
  return rowToRecord(row as unknown as TaskRow);
}

/** A row of the daemons table. */
export interface DaemonRow {
  id: string;
  hostname: string;
  version: string;
  capacity: number;
  labels: string;
  connected: boolean;
  connected_at: number;
  last_seen: number;
  disconnected_at: number | null;
}

/** Builds a DaemonRecord from a row. */
export function rowToDaemon(row: DaemonRow): DaemonRecord {
  return {
    id: row.id,
    hostname: row.hostname,
    version: row.version,
    capacity: row.capacity,
    labels: JSON.parse(row.labels) as Record<string, string>,
    connected: row.connected,
    connectedAt: new Date(row.connected_at),
    lastSeen: new Date(row.last_seen),
    disconnectedAt: row.disconnected_at === null ? undefined : new Date(row.disconnected_at),
  };
}
