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
  /** Only events of the tasks of this workflow. */
  readonly workflow?: WorkflowMembers;
}

/**
 * The tasks of one workflow, as a watcher learns them: those stored when it starts (`load`), and
 * each new one from its `task.submitted` event, which names the workflow.
 */
export class WorkflowMembers {
  private readonly members = new Set<string>();

  constructor(readonly id: string) {}

  /** Adds the workflow's stored tasks (`ids` reads them page by page). */
  async load(ids: (workflowId: string) => Promise<readonly string[]>): Promise<void> {
    for (const id of await ids(this.id)) this.members.add(id);
  }

  /** Whether `ev` is about a task of the workflow (learning the task from its submission). */
  admits(ev: Event): boolean {
    if (ev.type === "task.submitted" && ev.data.workflow_id === this.id) this.members.add(ev.taskId);
    return this.members.has(ev.taskId);
  }
}

/**
 * A live subscription. Read it with `take()` until it returns undefined, then ask `onReady` to be
 * called back when there is more; an explicit queue rather than an async iterator, so draining a
 * backlog costs no promise per event and an idle subscription holds no suspended generator.
 */
export interface Subscription {
  /**
   * The oldest queued event, or undefined when none is queued (then `closed` says whether more may
   * come). Once the queue is drained, throws why the subscription failed (fell behind, shutdown).
   */
  take(): Event | undefined;
  /**
   * Calls `waiter.ready()` once, in a microtask, when an event is queued or the subscription fails
   * or closes (soon, if one of these already happened). Replaces the waiter asked for before. An
   * object rather than a callback: the waiter is the reader itself, so an idle reader holds no
   * closure of its own.
   */
  onReady(waiter: ReadyWaiter): void;
  /** Whether it was closed by `close()`; a closed subscription gets no more events. */
  readonly closed: boolean;
  close(): void;
}

/** Told when a subscription has something to read. */
export interface ReadyWaiter {
  ready(): void;
}

/** Fan-out of published events to subscribers. */
export interface EventBus {
  /** Delivers committed events, in sequence order, to every matching subscriber. */
  publish(events: readonly Event[]): void;
  /** Starts receiving events published from now on. */
  subscribe(filter: EventFilter, maxBuffered: number): Subscription;
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
  // First: a submission must be seen whatever the type filter, to learn the task.
  if (filter.workflow && !filter.workflow.admits(ev)) return false;
  if (filter.taskId && ev.taskId !== filter.taskId) return false;
  if (filter.types && filter.types.size > 0 && !filter.types.has(ev.type)) return false;
  return true;
}

class QueueSubscription implements Subscription {
  // A queue with a moving head: Array.prototype.shift() copies the whole backlog on every call.
  // None while empty: an idle subscriber holds no array (whose storage stays once it has grown).
  private queue: Event[] | undefined;
  private head = 0;
  private wake: ReadyWaiter | undefined;
  private failure: Error | undefined;
  private ended = false;

  constructor(
    readonly filter: EventFilter,
    private readonly maxBuffered: number,
    private readonly onClose: (s: QueueSubscription) => void,
  ) {}

  get closed(): boolean {
    return this.ended;
  }

  push(ev: Event): void {
    if (this.ended || this.failure) return;
    if (!this.queue) this.queue = [];
    const queue = this.queue;
    if (queue.length - this.head >= this.maxBuffered) {
      const last = queue[this.head]?.sequence ?? ev.sequence;
      // Drop the backlog: the client resumes from the last sequence it actually received.
      this.clear();
      this.fail(
        new ResourceExhaustedError(
          `watcher fell more than ${this.maxBuffered} events behind; resume with after_sequence set to the last sequence received`,
          { first_undelivered_sequence: String(last) },
        ),
      );
      return;
    }
    queue.push(ev);
    this.notify();
  }

  fail(err: Error): void {
    if (this.ended || this.failure) return;
    this.failure = err;
    this.notify();
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.clear();
    this.onClose(this);
    this.notify();
  }

  take(): Event | undefined {
    const queue = this.queue;
    if (queue && this.head < queue.length) {
      const ev = queue[this.head++];
      if (this.head === queue.length) this.clear();
      return ev;
    }
    if (this.failure) throw this.failure;
    return undefined;
  }

  onReady(waiter: ReadyWaiter): void {
    if (this.queue || this.failure || this.ended) queueMicrotask(() => waiter.ready());
    else this.wake = waiter;
  }

  private clear(): void {
    this.queue = undefined;
    this.head = 0;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    // In a microtask, as a promise would: the publisher's loop over subscribers is not held up.
    if (w) queueMicrotask(() => w.ready());
  }
}

/** Creates an empty bus. */
export function createEventBus(): EventBus {
  const subs = new Set<QueueSubscription>();
  const remove = (s: QueueSubscription) => subs.delete(s);
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
    subscribe(filter, maxBuffered) {
      const sub = new QueueSubscription(filter, maxBuffered, remove);
      subs.add(sub);
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
