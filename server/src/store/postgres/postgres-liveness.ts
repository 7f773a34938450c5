/**
 * Who is alive, on PostgreSQL: daemons (hello, heartbeats, disconnects), the stream records of
 * core-only runs, and the two sweeps that read them (orphaned tasks, disconnected core runs). None of
 * these writes appends events, so none takes the event counter's lock.
 */
import { TaskStatus } from "../../../../gen/spage/core/common_pb.js";
import { tracedWrite } from "../../tracing/store-spans.js";
import { taskColumnCount, taskColumns } from "../task-rows.js";
import type { CoreStreamEnd, TaskStore } from "../task-store.js";
import { named, namedArray, type PostgresDb } from "./postgres-pool.js";
import { type DaemonRow, rowToDaemon, taskRecordOf } from "./postgres-rows.js";

const activeStates = [TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.CANCELING].join(",");

const sql = {
  orphaned: `SELECT ${taskColumns("t")}, d.connected, d.last_seen, d.disconnected_at, t.updated_at
   FROM tasks t LEFT JOIN daemons d ON d.id = t.daemon_id
   WHERE t.status IN (${activeStates})
     AND (d.id IS NULL OR NOT d.connected OR d.last_seen < $1)
     AND (t.daemon_id <> '' OR NOT EXISTS (SELECT 1 FROM core_streams c WHERE c.task_id = t.id))
   ORDER BY t.position LIMIT $2`,
  // One statement for all ids, each once and in one order, so two gateways renewing overlapping
  // sets lock the rows in the same order and cannot deadlock.
  coreStreamsOpen: `INSERT INTO core_streams (task_id, open, seen_at, ended_at, end_kind)
   SELECT DISTINCT id, true, $2::bigint, NULL::bigint, '' FROM unnest($1::text[]) AS id ORDER BY id
   ON CONFLICT (task_id) DO UPDATE SET open = true, seen_at = excluded.seen_at, ended_at = NULL, end_kind = ''`,
  coreStreamEnded: "UPDATE core_streams SET open = false, ended_at = $1, end_kind = $2 WHERE task_id = $3",
  disconnectedCoreRuns: `SELECT ${taskColumns("t")}, c.open, c.seen_at, c.ended_at, c.end_kind
   FROM core_streams c JOIN tasks t ON t.id = c.task_id
   WHERE (NOT c.open OR c.seen_at < $1)
     AND t.status IN (${TaskStatus.RUNNING}, ${TaskStatus.CANCELING}) AND t.daemon_id = ''
   ORDER BY t.position LIMIT $2`,
  daemonUpsert: `INSERT INTO daemons (id, hostname, version, capacity, labels, connected, connected_at, last_seen, disconnected_at)
   VALUES ($1, $2, $3, $4, $5, true, $6, $6, NULL)
   ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version,
     capacity = excluded.capacity, labels = excluded.labels, connected = true, connected_at = excluded.connected_at,
     last_seen = excluded.last_seen, disconnected_at = NULL`,
  daemonSeen: "UPDATE daemons SET last_seen = $1 WHERE id = $2",
  daemonGone: "UPDATE daemons SET connected = false, disconnected_at = $1, last_seen = $1 WHERE id = $2",
  replicaSeen: `WITH seen AS (
     INSERT INTO gateways (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
     RETURNING id),
   gone AS (DELETE FROM gateways WHERE seen_at < $4 RETURNING id)
   SELECT (SELECT count(*) FROM gateways WHERE seen_at >= $3 AND id <> $1)::int + (SELECT count(*) FROM seen)::int AS n`,
  // Taken when free or run out, renewed by its holder; the answer says who holds it now.
  claimLease: `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
     WHERE leases.holder = excluded.holder OR leases.until < $4
   RETURNING holder`,
  daemons: `SELECT id, hostname, version, capacity, labels, connected, connected_at, last_seen, disconnected_at
   FROM daemons WHERE connected OR ($1 AND last_seen >= $2) ORDER BY connected DESC, id`,
};

/** The liveness methods of TaskStore. */
export type PostgresLivenessMethods = Pick<
  TaskStore,
  | "orphanedTasks"
  | "coreStreamsOpen"
  | "coreStreamEnded"
  | "disconnectedCoreRuns"
  | "daemonConnected"
  | "daemonSeen"
  | "daemonDisconnected"
  | "listDaemons"
  | "replicaSeen"
  | "claimLease"
>;

/** Creates the liveness methods on an open, migrated database. */
export function createPostgresLiveness(db: PostgresDb): PostgresLivenessMethods {
  // Each is a statement of its own (its own transaction), a span of its own while tracing.
  const run = async (op: string, text: string, values: unknown[]) => {
    await tracedWrite("postgresql", op, () => db.pool.query(named(text, values)));
  };

  return {
    async orphanedTasks(now, leaseMs, limit) {
      const rows = (await db.pool.query(namedArray(sql.orphaned, [now.getTime() - leaseMs, limit]))).rows;
      return rows.map((r) => {
        const record = taskRecordOf(r);
        // The daemon's columns and the task's last update follow the task's columns.
        const [connected, lastSeen, disconnectedAt, updatedAt] = r.slice(taskColumnCount) as [
          boolean | null,
          number | null,
          number | null,
          number,
        ];
        let gone = updatedAt;
        if (connected === true && lastSeen !== null) gone = lastSeen + leaseMs;
        else if (disconnectedAt !== null) gone = disconnectedAt;
        return { record, goneSince: new Date(gone) };
      });
    },

    async coreStreamsOpen(taskIds) {
      if (taskIds.length === 0) return db.guard(async () => undefined);
      await run("coreStreamsOpen", sql.coreStreamsOpen, [[...taskIds], Date.now()]);
    },

    coreStreamEnded: (taskId, end: CoreStreamEnd) =>
      run("coreStreamEnded", sql.coreStreamEnded, [Date.now(), end, taskId]),

    async disconnectedCoreRuns(staleBefore, limit) {
      const rows = (await db.pool.query(namedArray(sql.disconnectedCoreRuns, [staleBefore.getTime(), limit])))
        .rows;
      return rows.map((r) => {
        // The core stream's columns follow the task's columns.
        const [open, seenAt, endedAt, endKind] = r.slice(taskColumnCount) as [
          boolean,
          number,
          number | null,
          string,
        ];
        const ended = !open && endedAt !== null;
        return {
          record: taskRecordOf(r),
          end: ended ? (endKind as CoreStreamEnd) : "stale",
          since: new Date(ended ? endedAt : seenAt),
        };
      });
    },

    daemonConnected: (d) =>
      run("daemonConnected", sql.daemonUpsert, [
        d.id,
        d.hostname,
        d.version,
        d.capacity,
        JSON.stringify(d.labels),
        Date.now(),
      ]),

    daemonSeen: (id) => run("daemonSeen", sql.daemonSeen, [Date.now(), id]),

    daemonDisconnected: (id) => run("daemonDisconnected", sql.daemonGone, [Date.now(), id]),

    async replicaSeen(id, liveSince) {
      const now = Date.now();
      // Rows of gateways gone for an hour are dropped on the way.
      const res = await db.pool.query<{ n: number }>(
        named(sql.replicaSeen, [id, now, liveSince.getTime(), now - 3_600_000]),
      );
      return Math.max(1, res.rows[0]?.n ?? 1);
    },

    async claimLease(name, holder, until) {
      const res = await db.pool.query<{ holder: string }>(
        named(sql.claimLease, [name, holder, until.getTime(), Date.now()]),
      );
      return res.rows[0]?.holder === holder;
    },

    async listDaemons(includeDisconnected, seenSince) {
      const rows = (
        await db.pool.query<DaemonRow>(named(sql.daemons, [includeDisconnected, seenSince.getTime()]))
      ).rows;
      return rows.map(rowToDaemon);
    },
  };
}
