/**
 * The event bus of a gateway whose store other gateways write too (PostgreSQL): live events come
 * from the event table, not from this process's writes. One reader per gateway follows the table
 * from the last sequence it delivered and hands each page, in sequence order, to the in-process bus
 * (event-bus.ts) its watchers and the dispatcher listen to. So every replica delivers every event,
 * its own and the others', in one order, with no gap and no duplicate.
 *
 * The reader reads when this gateway committed events (`publish`, called after each local write),
 * when the store says another process committed some (PostgreSQL NOTIFY), and every `pollMs` in
 * case a notification was lost: a notification only wakes, the table is the truth. It never
 * passes a sequence that may still commit, because the store hands out sequences in commit order.
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";
import type { TaskStore } from "../store/task-store.js";
import { createEventBus, type EventBus } from "./event-bus.js";

/** Where the reader's trouble is reported. */
export interface SharedBusLog {
  warn(obj: object, msg: string): void;
}

/** A bus fed from the event table; `start` before use, `stop` at shutdown. */
export interface SharedEventBus extends EventBus {
  /** Starts following the table from its current end. */
  start(): Promise<void>;
  /** Stops following. */
  stop(): void;
  /** The last sequence handed to subscribers. */
  readonly delivered: bigint;
}

/** Most events read per page. */
const pageSize = 500;

/** Creates a bus that follows `store`'s event table. */
export function createSharedEventBus(
  store: TaskStore,
  log: SharedBusLog,
  opts: { readonly pollMs?: number } = {},
): SharedEventBus {
  const local = createEventBus();
  const pollMs = opts.pollMs ?? 500;
  let cursor = 0n;
  let reading = false;
  let again = false;
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let unwatch: (() => void) | undefined;
  let failing = false;

  const read = async (): Promise<void> => {
    if (stopped) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        for (;;) {
          const page = await store.readEvents({ afterSequence: cursor, limit: pageSize });
          if (page.length === 0 || stopped) break;
          cursor = page[page.length - 1]?.sequence ?? cursor;
          local.publish(page);
          if (page.length < pageSize) break;
        }
      } while (again && !stopped);
      failing = false;
    } catch (err) {
      // The store is unreachable: live events wait; the next wake or poll reads from the cursor.
      if (!failing) log.warn({ err }, "events not read from the store; retrying");
      failing = true;
    } finally {
      reading = false;
    }
  };
  const wake = () => void read();

  return {
    publish(_events: readonly Event[]) {
      // Committed here: read them back from the table, in order with everyone else's.
      wake();
    },
    subscribe: (filter, maxBuffered) => local.subscribe(filter, maxBuffered),
    listen: (listener) => local.listen(listener),
    get subscriberCount() {
      return local.subscriberCount;
    },
    closeAll: (reason) => local.closeAll(reason),
    get delivered() {
      return cursor;
    },
    async start() {
      cursor = (await store.stats()).lastSequence;
      stopped = false;
      unwatch = store.watchCommits?.(wake);
      timer = setInterval(wake, pollMs);
      timer.unref();
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      unwatch?.();
    },
  };
}
