/**
 * In-process fan-out of stored events to live subscribers. Each subscriber has its own bounded
 * queue: publishing never waits for a subscriber, and one that falls more than `maxBuffered` events
 * behind is ended with ResourceExhausted (it can resume from the last sequence it received).
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";
import { ResourceExhaustedError } from "../domain/errors.js";

/** Which events a subscriber wants. */
export interface EventFilter {
  /** Only events of this task; empty or undefined for all. */
  readonly taskId?: string;
  /** Only these types; empty or undefined for all. */
  readonly types?: ReadonlySet<string>;
}

/** A live subscription: iterate it to receive events; `close()` ends it. */
export interface Subscription extends AsyncIterable<Event> {
  close(): void;
}

/** Fan-out of published events to subscribers. */
export interface EventBus {
  /** Delivers committed events, in sequence order, to every matching subscriber. */
  publish(events: readonly Event[]): void;
  /** Starts receiving events published from now on. */
  subscribe(filter: EventFilter, maxBuffered: number, signal?: AbortSignal): Subscription;
  /**
   * Calls `listener` synchronously with every published batch (for in-process reactions such as
   * dispatch); returns a function that removes it. A listener must not throw or block.
   */
  listen(listener: (events: readonly Event[]) => void): () => void;
  /** Number of open subscriptions. */
  readonly subscriberCount: number;
  /** Ends every subscription with `reason` (used at shutdown). */
  closeAll(reason: Error): void;
}

/** Whether an event passes a filter. */
export function matchesFilter(ev: Event, filter: EventFilter): boolean {
  if (filter.taskId && ev.taskId !== filter.taskId) return false;
  if (filter.types && filter.types.size > 0 && !filter.types.has(ev.type)) return false;
  return true;
}

class QueueSubscription implements Subscription {
  private readonly queue: Event[] = [];
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;

  constructor(
    readonly filter: EventFilter,
    private readonly maxBuffered: number,
    private readonly onClose: (s: QueueSubscription) => void,
  ) {}

  push(ev: Event): void {
    if (this.closed || this.failure) return;
    if (this.queue.length >= this.maxBuffered) {
      const last = this.queue[0]?.sequence ?? ev.sequence;
      // Drop the backlog: the client resumes from the last sequence it actually received.
      this.queue.length = 0;
      this.fail(
        new ResourceExhaustedError(
          `watcher fell more than ${this.maxBuffered} events behind; resume with after_sequence set to the last sequence received`,
          { first_undelivered_sequence: String(last) },
        ),
      );
      return;
    }
    this.queue.push(ev);
    this.notify();
  }

  fail(err: Error): void {
    if (this.closed || this.failure) return;
    this.failure = err;
    this.notify();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.onClose(this);
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Event> {
    try {
      for (;;) {
        const ev = this.queue.shift();
        if (ev) {
          yield ev;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.closed) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      this.close();
    }
  }
}

/** Creates an empty bus. */
export function createEventBus(): EventBus {
  const subs = new Set<QueueSubscription>();
  const listeners = new Set<(events: readonly Event[]) => void>();
  return {
    publish(events) {
      for (const l of listeners) l(events);
      if (subs.size === 0) return;
      for (const ev of events) {
        for (const s of subs) {
          if (matchesFilter(ev, s.filter)) s.push(ev);
        }
      }
    },
    subscribe(filter, maxBuffered, signal) {
      const sub = new QueueSubscription(filter, maxBuffered, (s) => subs.delete(s));
      subs.add(sub);
      if (signal) {
        if (signal.aborted) sub.close();
        else signal.addEventListener("abort", () => sub.close(), { once: true });
      }
      return sub;
    },
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get subscriberCount() {
      return subs.size;
    },
    closeAll(reason) {
      for (const s of [...subs]) s.fail(reason);
    },
  };
}
