/**
 * Replay-then-tail over the event log: yields stored events after a sequence, then live ones, with
 * no gap and no duplicate. Order of operations: replay until caught up, subscribe, replay once more
 * (events committed between the two steps), then tail the subscription, skipping anything already
 * sent. Replaying before subscribing keeps a long replay from overflowing the live buffer.
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";
import type { TaskStore } from "../store/task-store.js";
import type { EventBus, EventFilter } from "./event-bus.js";

/** Options of one watch. */
export interface WatchOptions {
  readonly afterSequence: bigint;
  readonly filter: EventFilter;
  /** Live events buffered for a slow watcher before it is ended with ResourceExhausted. */
  readonly maxBuffered: number;
  /** Events read from the store per replay page. */
  readonly pageSize?: number;
  readonly signal: AbortSignal;
}

/** Streams events for one watcher until `signal` aborts or the subscriber falls behind. */
export async function* watchEvents(
  store: TaskStore,
  bus: EventBus,
  opts: WatchOptions,
): AsyncGenerator<Event> {
  const pageSize = opts.pageSize ?? 500;
  let last = opts.afterSequence;

  async function* replay(): AsyncGenerator<Event> {
    for (;;) {
      const page = await store.readEvents({
        afterSequence: last,
        taskId: opts.filter.taskId,
        types: opts.filter.types,
        limit: pageSize,
      });
      for (const ev of page) {
        last = ev.sequence;
        yield ev;
      }
      if (page.length < pageSize || opts.signal.aborted) return;
    }
  }

  yield* replay();
  const sub = bus.subscribe(opts.filter, opts.maxBuffered, opts.signal);
  try {
    yield* replay();
    for await (const ev of sub) {
      if (ev.sequence <= last) continue;
      last = ev.sequence;
      yield ev;
    }
    // The subscription ends quietly when the call is aborted; the call itself must still fail
    // with the abort's reason (deadline exceeded, client cancel, shutdown).
    opts.signal.throwIfAborted();
  } finally {
    sub.close();
  }
}
