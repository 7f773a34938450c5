/**
 * The embedded TaskStore: one SQLite file through better-sqlite3, in WAL mode with full sync, so a
 * write that resolved survives `kill -9` and power loss. Writes go through group commit (one
 * transaction and one fsync per event-loop turn); reads run directly against committed data.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { Event } from "../../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../../gen/spage/core/common_pb.js";
import type { AuditFields } from "../../domain/audit-chain.js";
import { terminalStates } from "../../domain/task-state.js";
import type { GatewayStore } from "../gateway-store.js";
import { GroupCommit } from "../group-commit.js";
import {
  attemptsToJson,
  type DaemonRow,
  type EventRow,
  hostsToJson,
  linkBatchDependents,
  newEvent,
  newTaskColumns,
  newTaskRecord,
  rowToDaemon,
  rowToEvent,
  rowToRecord,
  stepsToJson,
  type TaskRow,
  taskColumnCount,
  taskColumns,
} from "../task-rows.js";
import type {
  CoreStreamEnd,
  CreatedTasks,
  DaemonRecord,
  DisconnectedCoreRun,
  EventQuery,
  NewEvent,
  NewTask,
  OrphanedTask,
  RecentDurations,
  StoreStats,
  TaskPage,
  TaskPatch,
  TaskQuery,
  TaskRecord,
} from "../task-store.js";
import { createAuditAppender, createSqliteAccess } from "./sqlite-access.js";
import { migrate } from "./sqlite-migrate.js";

/** Options of the SQLite store. */
export interface SqliteStoreOptions {
  /** Path of the database file; its directory is created if missing. */
  readonly path: string;
}

const activeStates = [TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.CANCELING];

/** Opens (creating and migrating if needed) the SQLite store. */
export function openSqliteStore(opts: SqliteStoreOptions): GatewayStore {
  mkdirSync(dirname(opts.path), { recursive: true });
  const db = new Database(opts.path);
  db.pragma("journal_mode = WAL");
  // FULL: the WAL is fsynced at every commit, so an acknowledged write survives power loss too.
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  // Each write of a group commit runs in its own savepoint, and SQLite keeps the original of every
  // page a savepoint changes in a sub-journal: in a temporary file by default, which cost a
  // pwrite per page and most of the CPU of an insert. In memory it is a copy.
  db.pragma("temp_store = MEMORY");
  // 32 MiB of page cache instead of 2 MiB: the index pages every insert touches stay in memory.
  db.pragma("cache_size = -32768");
  db.pragma("foreign_keys = ON");
  migrate(db);

  const appendAuditRows = createAuditAppender(db, () => writer.epoch);
  const stmt = {
    insertTask: db.prepare(
      `INSERT INTO tasks (id, type, priority, status, payload, metadata, request_hash, timeout_seconds, on_lost,
                          max_attempts, origin, owner, era, workflow_id, depends_on, retry_of, limit_hosts, depth,
                          created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    ),
    tasksByIds: db
      .prepare(`SELECT ${taskColumns()} FROM tasks WHERE id IN (SELECT value FROM json_each(?))`)
      .raw(true),
    statesByIds: db.prepare(
      "SELECT id, status, depth FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
    ),
    addDependent: db.prepare("UPDATE tasks SET dependents = json_insert(dependents, '$[#]', ?) WHERE id = ?"),
    settledWaiting: db
      .prepare(
        `SELECT ${taskColumns()} FROM tasks t WHERE t.status = ${TaskStatus.WAITING}
         AND NOT EXISTS (SELECT 1 FROM json_each(t.depends_on) j JOIN tasks d ON d.id = j.value
                         WHERE d.status NOT IN (${[...terminalStates].join(",")}))
         ORDER BY t.position LIMIT ?`,
      )
      .raw(true),
    taskById: db.prepare(`SELECT ${taskColumns()} FROM tasks WHERE id = ?`).raw(true),
    insertEvent: db.prepare("INSERT INTO events (type, task_id, data, created_at) VALUES (?, ?, ?, ?)"),
    lastSequence: db.prepare("SELECT COALESCE(MAX(sequence), 0) AS s FROM events"),
    countByStatus: db.prepare("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status"),
    ping: db.prepare("SELECT 1"),
    recent: db.prepare(
      "SELECT created_at, started_at, completed_at FROM tasks WHERE completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?",
    ),
    queue: db
      .prepare(
        `SELECT ${taskColumns()} FROM tasks WHERE status = ${TaskStatus.PENDING} AND origin = 'api' ORDER BY priority DESC, position LIMIT ?`,
      )
      .raw(true),
    dueCancels: db
      .prepare(
        `SELECT ${taskColumns()} FROM tasks WHERE cancel_deadline IS NOT NULL AND cancel_deadline <= ? AND status = ${TaskStatus.CANCELING}
       ORDER BY cancel_deadline LIMIT ?`,
      )
      .raw(true),
    ofDaemon: db
      .prepare(
        `SELECT ${taskColumns()} FROM tasks WHERE daemon_id = ? AND status IN (${activeStates.join(",")}) ORDER BY position`,
      )
      .raw(true),
    orphaned: db
      .prepare(
        `SELECT ${taskColumns("t")}, d.connected, d.last_seen, d.disconnected_at, t.updated_at
       FROM tasks t LEFT JOIN daemons d ON d.id = t.daemon_id
       WHERE t.status IN (${activeStates.join(",")})
         AND (d.id IS NULL OR d.connected = 0 OR d.last_seen < @stale)
         AND (t.daemon_id <> '' OR NOT EXISTS (SELECT 1 FROM core_streams c WHERE c.task_id = t.id))
       ORDER BY t.position LIMIT @limit`,
      )
      .raw(true),
    coreStreamOpen: db.prepare(
      `INSERT INTO core_streams (task_id, open, seen_at, ended_at, end_kind) VALUES (?, 1, ?, NULL, '')
       ON CONFLICT (task_id) DO UPDATE SET open = 1, seen_at = excluded.seen_at, ended_at = NULL, end_kind = ''`,
    ),
    coreStreamEnded: db.prepare(
      "UPDATE core_streams SET open = 0, ended_at = ?, end_kind = ? WHERE task_id = ?",
    ),
    coreStreamForget: db.prepare("DELETE FROM core_streams WHERE task_id = ?"),
    disconnectedCoreRuns: db
      .prepare(
        `SELECT ${taskColumns("t")}, c.open, c.seen_at, c.ended_at, c.end_kind
       FROM core_streams c JOIN tasks t ON t.id = c.task_id
       WHERE (c.open = 0 OR c.seen_at < @stale)
         AND t.status IN (${TaskStatus.RUNNING}, ${TaskStatus.CANCELING}) AND t.daemon_id = ''
       ORDER BY t.position LIMIT @limit`,
      )
      .raw(true),
    daemonUpsert: db.prepare(
      `INSERT INTO daemons (id, hostname, version, capacity, labels, connected, connected_at, last_seen, disconnected_at)
       VALUES (@id, @hostname, @version, @capacity, @labels, 1, @now, @now, NULL)
       ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version,
         capacity = excluded.capacity, labels = excluded.labels, connected = 1, connected_at = excluded.connected_at,
         last_seen = excluded.last_seen, disconnected_at = NULL`,
    ),
    daemonSeen: db.prepare("UPDATE daemons SET last_seen = ? WHERE id = ?"),
    daemonGone: db.prepare(
      "UPDATE daemons SET connected = 0, disconnected_at = ?, last_seen = ? WHERE id = ?",
    ),
    daemons: db.prepare(
      "SELECT * FROM daemons WHERE connected = 1 OR (@all = 1 AND last_seen >= @since) ORDER BY connected DESC, id",
    ),
    due: db
      .prepare(
        `SELECT ${taskColumns()} FROM tasks WHERE deadline_at IS NOT NULL AND deadline_at <= ? AND status IN (${activeStates.join(",")})
       ORDER BY deadline_at LIMIT ?`,
      )
      .raw(true),
  };

  let lastSequence = BigInt((stmt.lastSequence.get() as { s: number }).s);
  let pendingSequence = lastSequence;
  const writer = new GroupCommit(db, {
    afterCommit(partial) {
      // A write rolled back to its savepoint may have taken a sequence number it did not keep.
      if (partial) pendingSequence = BigInt((stmt.lastSequence.get() as { s: number }).s);
      lastSequence = pendingSequence;
    },
    onDiscard() {
      pendingSequence = lastSequence;
    },
  });

  const insertEvents = (events: readonly NewEvent[], now: number): Event[] =>
    events.map((e) => {
      const info = stmt.insertEvent.run(e.type, e.taskId, JSON.stringify(e.data), now);
      const sequence = Number(info.lastInsertRowid);
      if (BigInt(sequence) > pendingSequence) pendingSequence = BigInt(sequence);
      return newEvent(sequence, e, now);
    });

  const getRow = (id: string) => stmt.taskById.get(id) as TaskRow | undefined;
  // Statements whose SQL depends on which filters or fields a call uses, prepared once per shape.
  const shapes = new Map<string, Database.Statement>();
  const prepared = (sql: string) => {
    let st = shapes.get(sql);
    if (!st) {
      st = db.prepare(sql);
      shapes.set(sql, st);
    }
    return st;
  };

  const insertTask = (t: NewTask, now: number) => {
    const c = newTaskColumns(t, now);
    const info = stmt.insertTask.run(
      c.id,
      c.type,
      c.priority,
      c.status,
      c.payload,
      c.metadata,
      c.request_hash,
      c.timeout_seconds,
      c.on_lost,
      c.max_attempts,
      c.origin,
      c.owner,
      c.era,
      c.workflow_id,
      c.depends_on,
      c.retry_of,
      c.limit_hosts,
      c.depth,
      now,
      now,
    );
    return { c, info };
  };

  return {
    ...createSqliteAccess(db, writer, appendAuditRows),
    kind: "sqlite",

    createTask(t: NewTask, event: NewEvent, audit?: AuditFields) {
      if (t.dependsOn && t.dependsOn.length > 0)
        throw new Error("a task with dependencies goes through createTasks");
      return writer.submit(() => {
        const now = Date.now();
        const { c: params, info } = insertTask(t, now);
        if (info.changes === 0) {
          // The id was taken: the stored task, untouched.
          const row = getRow(t.id);
          if (!row) throw new Error(`task ${t.id} vanished during insert`);
          return { record: rowToRecord(row), created: false, events: [] };
        }
        // The record as stored, built here rather than read back: a row object made by the driver
        // costs more than the whole insert.
        const record = newTaskRecord(params, t, Number(info.lastInsertRowid));
        const events = insertEvents([event], now);
        if (audit) appendAuditRows([audit]);
        return { record, created: true, events };
      }, "createTask");
    },

    createTasks(tasks, events, audit) {
      return writer.submit((): CreatedTasks => {
        const ids = JSON.stringify(tasks.map((t) => t.id));
        const taken = (stmt.tasksByIds.all(ids) as TaskRow[]).map(rowToRecord);
        if (taken.length > 0) return { created: false, taken };
        const now = Date.now();
        const records = tasks.map((t) => {
          const { c, info } = insertTask(t, now);
          // Within one request ids are unique (the service checks), and none was taken.
          if (info.changes === 0) throw new Error(`task ${t.id} was inserted twice`);
          for (const dep of t.dependsOn ?? []) stmt.addDependent.run(t.id, dep);
          return newTaskRecord(c, t, Number(info.lastInsertRowid));
        });
        linkBatchDependents(records);
        const stored = insertEvents(events, now);
        if (audit && audit.length > 0) appendAuditRows(audit);
        return { created: true, records, events: stored };
      }, "createTasks");
    },

    async taskStates(ids) {
      const rows = stmt.statesByIds.all(JSON.stringify(ids)) as {
        id: string;
        status: number;
        depth: number;
      }[];
      return rows.map((r) => ({ id: r.id, status: r.status as TaskStatus, depth: r.depth }));
    },

    async settledWaiting(limit) {
      return (stmt.settledWaiting.all(limit) as TaskRow[]).map(rowToRecord);
    },

    async getTask(id) {
      const row = getRow(id);
      return { record: row ? rowToRecord(row) : undefined, sequence: lastSequence };
    },

    updateTask(id, expected, patch: TaskPatch, events) {
      return writer.submit(() => {
        const now = Date.now();
        const sets: string[] = ["version = version + 1", "updated_at = @now"];
        const params: Record<string, unknown> = {
          id,
          now,
          expected_status: expected.status,
          expected_version: expected.version,
        };
        const set = (column: string, value: unknown) => {
          sets.push(`${column} = @${column}`);
          params[column] = value;
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
        if (patch.cancelDeadline !== undefined)
          set("cancel_deadline", patch.cancelDeadline?.getTime() ?? null);
        if (patch.outputSeq !== undefined) set("output_seq", patch.outputSeq);
        const info = prepared(
          `UPDATE tasks SET ${sets.join(", ")} WHERE id = @id AND status = @expected_status AND version = @expected_version`,
        ).run(params);
        if (info.changes === 0) return undefined;
        const row = getRow(id);
        if (!row) return undefined;
        if (patch.status !== undefined && terminalStates.has(patch.status)) stmt.coreStreamForget.run(id);
        return { record: rowToRecord(row), events: insertEvents(events, now) };
      }, "updateTask");
    },

    appendEvents(events) {
      return writer.submit(() => insertEvents(events, Date.now()), "appendEvents");
    },

    async listTasks(q: TaskQuery): Promise<TaskPage> {
      const where: string[] = [];
      const params: unknown[] = [];
      if (q.status !== undefined) {
        where.push("status = ?");
        params.push(q.status);
      }
      if (q.type) {
        where.push("type = ?");
        params.push(q.type);
      }
      if (q.priority !== undefined) {
        where.push("priority = ?");
        params.push(q.priority);
      }
      if (q.createdAfter) {
        where.push("created_at >= ?");
        params.push(q.createdAfter.getTime());
      }
      if (q.createdBefore) {
        where.push("created_at < ?");
        params.push(q.createdBefore.getTime());
      }
      if (q.idPrefix) {
        where.push("substr(id, 1, ?) = ?");
        params.push(q.idPrefix.length, q.idPrefix);
      }
      if (q.workflowId) {
        where.push("workflow_id = ?");
        params.push(q.workflowId);
      }
      if (q.label) {
        where.push("json_extract(metadata, ?) = ?");
        params.push(`$.${JSON.stringify(q.label.key)}`, q.label.value);
      }
      if (q.unfinished && q.status === undefined)
        where.push(`status NOT IN (${[...terminalStates].join(",")})`);
      const filter = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
      const total = (prepared(`SELECT COUNT(*) AS n FROM tasks ${filter}`).get(...params) as { n: number }).n;
      const pageWhere = [...where];
      const pageParams = [...params];
      if (q.afterPosition !== undefined) {
        pageWhere.push(q.order === "newest" ? "position < ?" : "position > ?");
        pageParams.push(q.afterPosition);
      }
      const pageFilter = pageWhere.length > 0 ? `WHERE ${pageWhere.join(" AND ")}` : "";
      const offset = q.afterPosition === undefined ? q.offset : 0;
      const rows = prepared(
        `SELECT ${taskColumns("", false)} FROM tasks ${pageFilter} ORDER BY position ${q.order === "newest" ? "DESC" : "ASC"} LIMIT ? OFFSET ?`,
      )
        .raw(true)
        .all(...pageParams, q.limit + 1, offset) as TaskRow[];
      const more = rows.length > q.limit;
      return { records: rows.slice(0, q.limit).map(rowToRecord), total, sequence: lastSequence, more };
    },

    async readEvents(q: EventQuery) {
      const where = ["sequence > ?", "sequence <= ?"];
      const params: unknown[] = [Number(q.afterSequence), Number(lastSequence)];
      if (q.taskId) {
        where.push("task_id = ?");
        params.push(q.taskId);
      }
      if (q.types && q.types.size > 0) {
        where.push(`type IN (${[...q.types].map(() => "?").join(",")})`);
        params.push(...q.types);
      }
      const rows = prepared(
        `SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY sequence LIMIT ?`,
      ).all(...params, q.limit) as EventRow[];
      return rows.map(rowToEvent);
    },

    async pendingQueue(limit): Promise<TaskRecord[]> {
      return (stmt.queue.all(limit) as TaskRow[]).map(rowToRecord);
    },

    async dueDeadlines(now, limit): Promise<TaskRecord[]> {
      return (stmt.due.all(now.getTime(), limit) as TaskRow[]).map(rowToRecord);
    },

    async dueCancels(now, limit) {
      return (stmt.dueCancels.all(now.getTime(), limit) as TaskRow[]).map(rowToRecord);
    },

    async tasksOfDaemon(daemonId) {
      return (stmt.ofDaemon.all(daemonId) as TaskRow[]).map(rowToRecord);
    },

    async orphanedTasks(now, leaseMs, limit): Promise<OrphanedTask[]> {
      const rows = stmt.orphaned.all({ stale: now.getTime() - leaseMs, limit }) as TaskRow[];
      return rows.map((r) => {
        const record = rowToRecord(r);
        // The daemon's columns and the task's last update follow the task's columns.
        const [connected, lastSeen, disconnectedAt, updatedAt] = r.slice(taskColumnCount) as (
          | number
          | null
        )[];
        let gone = updatedAt as number;
        if (connected === 1 && typeof lastSeen === "number") gone = lastSeen + leaseMs;
        else if (typeof disconnectedAt === "number") gone = disconnectedAt;
        return { record, goneSince: new Date(gone) };
      });
    },

    coreStreamsOpen(taskIds) {
      return writer.submit(() => {
        const now = Date.now();
        for (const id of taskIds) stmt.coreStreamOpen.run(id, now);
      }, "coreStreamsOpen");
    },

    coreStreamEnded(taskId, end) {
      return writer.submit(() => {
        stmt.coreStreamEnded.run(Date.now(), end, taskId);
      }, "coreStreamEnded");
    },

    async disconnectedCoreRuns(staleBefore, limit): Promise<DisconnectedCoreRun[]> {
      const rows = stmt.disconnectedCoreRuns.all({ stale: staleBefore.getTime(), limit }) as TaskRow[];
      return rows.map((r) => {
        // The core stream's columns follow the task's columns.
        const [open, seenAt, endedAt, endKind] = r.slice(taskColumnCount) as [
          number,
          number,
          number | null,
          string,
        ];
        const ended = open === 0 && endedAt !== null;
        return {
          record: rowToRecord(r),
          end: ended ? (endKind as CoreStreamEnd) : "stale",
          since: new Date(ended ? endedAt : seenAt),
        };
      });
    },

    daemonConnected(d) {
      return writer.submit(() => {
        stmt.daemonUpsert.run({
          id: d.id,
          hostname: d.hostname,
          version: d.version,
          capacity: d.capacity,
          labels: JSON.stringify(d.labels),
          now: Date.now(),
        });
      }, "daemonConnected");
    },

    daemonSeen(id) {
      return writer.submit(() => {
        stmt.daemonSeen.run(Date.now(), id);
      }, "daemonSeen");
    },

    daemonDisconnected(id) {
      return writer.submit(() => {
        const now = Date.now();
        stmt.daemonGone.run(now, now, id);
      }, "daemonDisconnected");
    },

    async listDaemons(includeDisconnected, seenSince): Promise<DaemonRecord[]> {
      return (
        stmt.daemons.all({ all: includeDisconnected ? 1 : 0, since: seenSince.getTime() }) as DaemonRow[]
      ).map(rowToDaemon);
    },

    async stats(): Promise<StoreStats> {
      const rows = stmt.countByStatus.all() as { status: number; n: number }[];
      return { tasksByStatus: new Map(rows.map((r) => [r.status as TaskStatus, r.n])), lastSequence };
    },

    async recentDurations(limit): Promise<RecentDurations> {
      const rows = stmt.recent.all(limit) as {
        created_at: number;
        started_at: number | null;
        completed_at: number;
      }[];
      const queueSeconds: number[] = [];
      const runSeconds: number[] = [];
      for (const r of rows) {
        if (r.started_at === null) continue;
        queueSeconds.push((r.started_at - r.created_at) / 1000);
        runSeconds.push((r.completed_at - r.started_at) / 1000);
      }
      return { queueSeconds, runSeconds };
    },

    async ping() {
      stmt.ping.get();
    },

    async close() {
      if (!db.open) return;
      writer.close();
      db.close();
    },
  };
}
