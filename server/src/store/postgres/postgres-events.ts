/**
 * Event sequence numbers on PostgreSQL, allocated under a lock at the end of the writing transaction.
 *
 * The hazard: a PostgreSQL sequence (or identity) hands out numbers when a transaction asks, not when
 * it commits. Transaction A takes 10, B takes 11, B commits first; a reader polling
 * `readEvents(afterSequence)` sees 11, moves its cursor past 10, and never sees 10 when A commits.
 * That breaks the store's promise that sequences are gap-free and that "read, then watch from that
 * sequence" misses nothing, on one gateway as much as across replicas.
 *
 * The choice: the numbers come from one counter row, `event_counter.last`, updated
 * (`last = last + n`) in the same statement that inserts the events, and that statement is the last
 * one of its transaction before COMMIT. The update takes the row's lock, which every other event
 * writer's update waits for until this transaction commits or rolls back (READ COMMITTED: the waiter
 * then adds to the committed value). So sequences are handed out in commit order: whenever a reader
 * sees sequence n committed, everything below n is committed too, and a rolled-back writer gives its
 * numbers back with its rollback. The counter only ever holds committed values, so it is also the
 * "last committed sequence" getTask and listTasks return (read in the same statement as the rows).
 *
 * The cost: event-writing transactions are serialized across every gateway sharing the database for
 * the time between the counter update and the end of COMMIT, which includes the commit's WAL flush.
 * Everything else a transaction does (the task insert or conditional update, the audit record)
 * happens before, in parallel with other writers. Event throughput is therefore bounded by about one
 * commit flush per event-writing transaction, whatever the number of replicas; writes that change no
 * event (heartbeats, stream renewals, key changes) do not take the lock. The rejected alternative,
 * readers that stop below the oldest in-progress writer's snapshot (`pg_snapshot_xmin`), keeps
 * writers parallel but makes readers depend on every open transaction in the database, including
 * unrelated long ones, and needs a transaction id column on every event.
 */
import type { Event } from "../../../../gen/spage/core/common_pb.js";
import { newEvent } from "../task-rows.js";
import type { NewEvent } from "../task-store.js";
import { named, type Queryable } from "./postgres-pool.js";

// One statement: lock and advance the counter, then insert the events numbered below its new value
// (event i of n gets last - n + i). A data-modifying CTE runs exactly once.
// The same statement notifies the schema's channel (delivered at COMMIT, once per transaction), so
// the other gateways on the database read the new events at once (postgres-notify.ts).
const appendSql = `WITH counter AS (UPDATE event_counter SET last = last + $1::bigint RETURNING last),
inserted AS (
  INSERT INTO events (sequence, type, task_id, data, created_at)
  SELECT counter.last - $1::bigint + e.n, e.type, e.task_id, e.data, $5::bigint
    FROM counter, unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS e (type, task_id, data, n)
  RETURNING sequence)
SELECT inserted.sequence FROM inserted, (SELECT pg_notify('spage_events_' || current_schema(), '')) AS note`;

/**
 * Appends events, numbering them from the event counter. Inside a transaction it must be the last
 * statement before COMMIT (the counter stays locked until then); on the pool it is a transaction of
 * its own. Returns the events as stored, in order.
 */
export async function appendEventRows(
  db: Queryable,
  events: readonly NewEvent[],
  now: number,
): Promise<Event[]> {
  if (events.length === 0) return [];
  const res = await db.query<{ sequence: number }>(
    named(appendSql, [
      events.length,
      events.map((e) => e.type),
      events.map((e) => e.taskId),
      events.map((e) => JSON.stringify(e.data)),
      now,
    ]),
  );
  let first = Number.POSITIVE_INFINITY;
  for (const r of res.rows) if (r.sequence < first) first = r.sequence;
  return events.map((e, i) => newEvent(first + i, e, now));
}
