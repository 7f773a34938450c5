/**
 * Replay-then-tail over the event log: yields stored events after a sequence, then live ones, with
 * no gap and no duplicate. Order of operations: replay until caught up, subscribe, replay once more
 * (events committed between the two steps), then tail the subscription, skipping anything already
 * sent. Replaying before subscribing keeps a long replay from overflowing the live buffer.
 *
 * Every event goes through the stream's turn budget (turn-budget.ts), so a watcher with a backlog
 * sends a bounded share per event-loop turn and a hundred watchers opened at once all get their
 * first events early, instead of the first ones filling their write buffers before anything is sent.
 *
 * One implementation, WatchPump, pushes the events into a sink (push-stream.ts). Once caught up, a
 * watcher is data only: its subscription, whose wake-up callback resumes the pump. The fast path
 * lets it push straight into the HTTP/2 stream; Connect's handler pulls it through `watchEvents`, a
 * generator over the same pump.
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";
import { whenAborted } from "../call-abort.js";
import { kPushTo, type Pushable, type PushSink } from "../push-stream.js";
import type { StreamGauge } from "../services/gateway-metrics.js";
import type { TaskStore } from "../store/task-store.js";
import { abortError } from "./abort-reason.js";
import {
  type EventBus,
  type EventFilter,
  matchesFilter,
  type ReadyWaiter,
  type Subscription,
} from "./event-bus.js";
import { approxEventBytes } from "./event-size.js";
import { TurnBudget } from "./turn-budget.js";

/** What to watch. */
export interface WatchSetup {
  readonly afterSequence: bigint;
  readonly filter: EventFilter;
  /** With a workflow filter: the ids of the workflow's stored tasks. */
  readonly workflowTasks?: (workflowId: string) => Promise<readonly string[]>;
  /** Live events buffered for a slow watcher before it is ended with ResourceExhausted. */
  readonly maxBuffered: number;
  /** Most events read from the store per replay page. */
  readonly pageSize?: number;
  /** Told when the watch starts streaming, and once when it ends. */
  readonly gauge?: StreamGauge;
}

/** Options of one watch pulled as a generator: what to watch, and the call's signal. */
export interface WatchOptions extends WatchSetup {
  readonly signal: AbortSignal;
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

/**
 * The response stream of one WatchEvents call: pulled (`for await`) it runs `watchEvents` on the
 * call's signal; pushed, it runs the pump without one, hearing the abort through the call itself.
 */
export class Watch implements AsyncIterable<Event>, Pushable<Event> {
  constructor(
    private readonly store: TaskStore,
    private readonly bus: EventBus,
    private readonly setup: WatchSetup,
    private readonly call: { readonly signal: AbortSignal },
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Event> {
    const opts = { ...this.setup, signal: this.call.signal };
    return watchEvents(this.store, this.bus, opts)[Symbol.asyncIterator]();
  }

  [kPushTo](sink: PushSink<Event>): void {
    new WatchPump(this.store, this.bus, this.setup, sink).start(this.call);
  }
}

/** Streams events for one watcher until `signal` aborts or the subscriber falls behind. */
export async function* watchEvents(
  store: TaskStore,
  bus: EventBus,
  opts: WatchOptions,
): AsyncGenerator<Event> {
  const sink = new PullSink();
  const pump = new WatchPump(store, bus, opts, sink);
  pump.start(opts);
  try {
    for (;;) {
      const ev = await sink.next();
      if (ev === undefined) return;
      yield ev;
      sink.taken();
    }
  } finally {
    pump.stop();
    sink.taken();
  }
}

/** Hands a pump's events to a generator one at a time: the pump waits until each is taken. */
class PullSink implements PushSink<Event> {
  private pending: Event | undefined;
  private ended: { readonly error: unknown } | undefined;
  private wakeConsumer: (() => void) | undefined;
  private resumePump: (() => void) | undefined;

  push(ev: Event): Promise<void> {
    this.pending = ev;
    this.wake();
    return new Promise((resolve) => {
      this.resumePump = resolve;
    });
  }

  end(error: unknown): void {
    this.ended = { error };
    this.wake();
  }

  /** The next event, or undefined once the watch ended cleanly; throws what it failed with. */
  async next(): Promise<Event | undefined> {
    if (this.pending === undefined && !this.ended) {
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
    const ev = this.pending;
    if (ev !== undefined) {
      this.pending = undefined;
      return ev;
    }
    const error = this.ended?.error;
    if (error !== undefined) throw error;
    return undefined;
  }

  /** The consumer took the last event (or stopped): the pump may go on. */
  taken(): void {
    const resume = this.resumePump;
    this.resumePump = undefined;
    resume?.();
  }

  private wake(): void {
    const w = this.wakeConsumer;
    this.wakeConsumer = undefined;
    w?.();
  }
}

/**
 * One watcher's replay-then-tail, pushing into a sink. The replay is an async loop (store reads may
 * wait); the tail is not: it sends what is queued, then leaves a wake-up callback with the
 * subscription and returns, so a caught-up watcher holds no suspended frame and no promise.
 */
class WatchPump implements ReadyWaiter {
  private last: bigint;
  private page: number;
  private readonly maxPage: number;
  private readonly budget = new TurnBudget();
  private sub: Subscription | undefined;
  /** Why the call was aborted, once it was. */
  private abortedWith: Error | undefined;
  /** A live event taken from the queue that waits for the next turn's budget. */
  private held: Event | undefined;
  private stopped = false;
  /** Waiting for the subscription, with nothing else to resume the pump. */
  private idle = false;
  private done = false;

  constructor(
    private readonly store: TaskStore,
    private readonly bus: EventBus,
    private readonly setup: WatchSetup,
    private readonly sink: PushSink<Event>,
  ) {
    this.last = setup.afterSequence;
    this.maxPage = setup.pageSize ?? defaultPageSize;
    this.page = Math.min(firstPageSize, this.maxPage);
  }

  /** Starts the watch, hearing the abort of `call` (a request, a context, or the signal's holder). */
  start(call: { readonly signal: AbortSignal }): void {
    this.setup.gauge?.opened();
    whenAborted(call, this);
    void this.replay();
  }

  /** The consumer stopped: end the watch (at once when it waits for events, else when it resumes). */
  stop(): void {
    this.stopped = true;
    if (this.idle) this.finish(undefined);
  }

  /** The call was aborted (its abort listener). */
  aborted(reason: unknown): void {
    if (this.done || this.abortedWith) return;
    this.abortedWith = abortError(reason);
    // The subscription ends quietly; the pump then ends the watch with the abort's reason.
    this.sub?.close();
  }

  private async replay(): Promise<void> {
    const { filter } = this.setup;
    try {
      // Two replay rounds: the second, after subscribing, reads what was committed during the first.
      // A workflow's tasks are learned from their submissions, which a type filter would hide
      // from the read: the read then takes every type and the filter picks.
      const workflow = filter.workflow;
      if (workflow && this.setup.workflowTasks) await workflow.load(this.setup.workflowTasks);
      for (let round = 0; round < 2; round++) {
        if (round === 1) {
          this.sub = this.bus.subscribe(filter, this.setup.maxBuffered);
          if (this.abortedWith) this.sub.close();
        }
        for (;;) {
          for (let w = this.budget.checkpoint(); w; w = this.budget.checkpoint()) await w;
          const rows = await this.store.readEvents({
            afterSequence: this.last,
            taskId: filter.taskId,
            types: workflow ? undefined : filter.types,
            limit: this.page,
          });
          for (const ev of rows) {
            if (workflow && !matchesFilter(ev, filter)) {
              this.last = ev.sequence;
              continue;
            }
            const bytes = approxEventBytes(ev);
            for (let w = this.budget.spend(bytes); w; w = this.budget.spend(bytes)) await w;
            if (this.stopped) {
              this.finish(undefined);
              return;
            }
            this.last = ev.sequence;
            const r = this.sink.push(ev);
            if (r === false) {
              this.finish(undefined);
              return;
            }
            if (r) await r;
            if (this.stopped) {
              this.finish(undefined);
              return;
            }
          }
          if (rows.length < this.page || this.abortedWith) break;
          this.page = Math.min(this.page * 2, this.maxPage);
        }
      }
    } catch (err) {
      this.finish(err);
      return;
    }
    this.tail();
  }

  /** The subscription has something to read (its waiter). */
  ready(): void {
    this.tail();
  }

  /** Sends queued live events while the turn's budget lasts; then waits, holding no frame. */
  private tail(): void {
    if (this.done) return;
    this.idle = false;
    const sub = this.sub as Subscription; // subscribed in the second replay round
    for (;;) {
      if (this.stopped) {
        this.finish(undefined);
        return;
      }
      let ev = this.held;
      if (ev === undefined) {
        try {
          ev = sub.take();
        } catch (err) {
          this.finish(err);
          return;
        }
        if (ev === undefined) {
          // Closed quietly on abort: the call still fails with the abort's reason.
          if (sub.closed) {
            this.finish(this.abortedWith);
            return;
          }
          this.idle = true;
          sub.onReady(this);
          return;
        }
        if (ev.sequence <= this.last) continue;
      }
      const wait = this.budget.spend(approxEventBytes(ev));
      if (wait) {
        this.held = ev;
        wait.then(() => this.tail());
        return;
      }
      this.held = undefined;
      this.last = ev.sequence;
      const r = this.sink.push(ev);
      if (r === false) {
        this.finish(undefined);
        return;
      }
      if (r) {
        r.then(() => this.tail());
        return;
      }
    }
  }

  private finish(error: unknown): void {
    if (this.done) return;
    this.done = true;
    this.idle = false;
    this.sub?.close();
    this.setup.gauge?.closed();
    this.sink.end(error);
  }
}
