/**
 * Replay-then-tail over the event log: yields stored events after a sequence, then live ones, with
 * no gap and no duplicate. Order of operations: replay until caught up, subscribe, replay once more
 * (events committed between the two steps), then tail the subscription, skipping anything already
 * sent. Replaying before subscribing keeps a long replay from overflowing the live buffer.
 *
 * Every event goes through the stream's turn budget (turn-budget.ts), so a watcher with a backlog
 * sends a bounded share per event-loop turn and a hundred watchers opened at once all get their
 * first events early, instead of the first ones filling their write buffers before anything is sent.
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";
import type { TaskStore } from "../store/task-store.js";
import { throwIfAborted } from "./abort-reason.js";
import type { EventBus, EventFilter, Subscription } from "./event-bus.js";
import { approxEventBytes } from "./event-size.js";
import { TurnBudget } from "./turn-budget.js";

/** Options of one watch. */
export interface WatchOptions {
  readonly afterSequence: bigint;
  readonly filter: EventFilter;
  /** Live events buffered for a slow watcher before it is ended with ResourceExhausted. */
  readonly maxBuffered: number;
  /** Most events read from the store per replay page. */
  readonly pageSize?: number;
  readonly signal: AbortSignal;
  /** Called when the watch starts streaming; what it returns is called when the watch ends. */
  readonly opened?: () => () => void;
}

/**
 * Rows of a watcher's first replay page; pages then double up to `pageSize`. A hundred watchers that
 * open at once each read one small page before their first event goes out, not a full one.
 */
const firstPageSize = 32;

/**
 * Default most rows per page. A stream sends a few dozen events per turn (turn-budget.ts), so a
 * bigger page only holds more decoded events in memory for longer, and a page is read in one go
 * (better-sqlite3 is synchronous), so it is also the longest the read can hold up a turn.
 */
const defaultPageSize = 128;

/** Streams events for one watcher until `signal` aborts or the subscriber falls behind. */
export async function* watchEvents(
  store: TaskStore,
  bus: EventBus,
  opts: WatchOptions,
): AsyncGenerator<Event> {
  const maxPage = opts.pageSize ?? defaultPageSize;
  let page = Math.min(firstPageSize, maxPage);
  let last = opts.afterSequence;
  const budget = new TurnBudget();
  let sub: Subscription | undefined;
  const closed = opts.opened?.();
  try {
    // Two replay rounds, written out here rather than as a nested generator, which would cost a
    // promise per replayed event: the second round, after subscribing, reads what was committed
    // during the first.
    for (let round = 0; round < 2; round++) {
      if (round === 1) sub = bus.subscribe(opts.filter, opts.maxBuffered, opts.signal);
      for (;;) {
        for (let w = budget.checkpoint(); w; w = budget.checkpoint()) await w;
        const rows = await store.readEvents({
          afterSequence: last,
          taskId: opts.filter.taskId,
          types: opts.filter.types,
          limit: page,
        });
        for (const ev of rows) {
          const bytes = approxEventBytes(ev);
          for (let w = budget.spend(bytes); w; w = budget.spend(bytes)) await w;
          last = ev.sequence;
          yield ev;
        }
        if (rows.length < page || opts.signal.aborted) break;
        page = Math.min(page * 2, maxPage);
      }
    }
    const live = sub as Subscription; // subscribed in the second round
    for (;;) {
      const ev = live.take();
      if (ev === undefined) {
        // The subscription ends quietly when the call is aborted; the call itself must still fail
        // with the abort's reason (deadline exceeded, client gone, shutdown).
        if (live.closed) break;
        await live.wait();
        continue;
      }
      if (ev.sequence <= last) continue;
      const bytes = approxEventBytes(ev);
      for (let w = budget.spend(bytes); w; w = budget.spend(bytes)) await w;
      last = ev.sequence;
      yield ev;
    }
    throwIfAborted(opts.signal);
  } finally {
    sub?.close();
    closed?.();
  }
}
