/**
 * The live-event stream of the dashboard. A loop reads WatchEvents from the last sequence it has
 * seen; when the stream breaks it waits (backoff with jitter, 250 ms doubling to 10 s) and resumes
 * from there, so nothing is missed, and it drops anything at or below that sequence, so nothing is
 * shown twice. Views subscribe to events and to the connection state. `live` is the dashboard's
 * stream of every event; the task view runs one more, filtered to its task, from the start.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Event } from "../../gen/spage/core/common_pb.js";
import { api } from "./api.js";

/** Where the stream is. */
export type LiveState = "connecting" | "live" | "reconnecting";

type EventListener = (events: readonly Event[]) => void;
type StateListener = (state: LiveState, detail: string) => void;

/** The live-event stream. */
export class LiveEvents {
  private readonly eventListeners = new Set<EventListener>();
  private readonly stateListeners = new Set<StateListener>();
  private readonly startListeners = new Set<(after: bigint) => void>();
  private abort: AbortController | undefined;
  private batch: Event[] = [];
  private flushScheduled = false;
  state: LiveState = "connecting";
  detail = "";
  /** The last sequence delivered to listeners. */
  lastSequence = 0n;
  /** The sequence the stream started after (undefined until started). */
  startSequence: bigint | undefined;

  /** A stream of every event, or of one task's (`taskId`). */
  constructor(private readonly taskId = "") {}

  /** Starts (or restarts) the loop from `afterSequence`. */
  start(afterSequence: bigint): void {
    this.stop();
    this.lastSequence = afterSequence;
    this.startSequence = afterSequence;
    for (const l of this.startListeners) l(afterSequence);
    const abort = new AbortController();
    this.abort = abort;
    void this.loop(abort.signal);
  }

  /** Stops the loop. */
  stop(): void {
    this.abort?.abort();
    this.abort = undefined;
    this.startSequence = undefined;
  }

  /** Listens to events (delivered in batches, in sequence order); returns the unsubscribe function. */
  onEvents(l: EventListener): () => void {
    this.eventListeners.add(l);
    return () => this.eventListeners.delete(l);
  }

  /** Called with the start sequence each time the stream (re)starts; returns the unsubscribe function. */
  onStart(l: (after: bigint) => void): () => void {
    this.startListeners.add(l);
    return () => this.startListeners.delete(l);
  }

  /** Listens to state changes; returns the unsubscribe function. */
  onState(l: StateListener): () => void {
    this.stateListeners.add(l);
    return () => this.stateListeners.delete(l);
  }

  private setState(state: LiveState, detail = ""): void {
    this.state = state;
    this.detail = detail;
    for (const l of this.stateListeners) l(state, detail);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let delay = 250;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        // A stream with nothing to say sends nothing: before saying live again after a drop, a
        // health check tells that the gateway is back (the first time, the call that gave the
        // start sequence just did).
        if (attempt++ > 0) await api.healthCheck({}, { signal, timeoutMs: 5000 });
        const stream = api.watchEvents({ afterSequence: this.lastSequence, taskId: this.taskId }, { signal });
        this.setState("live");
        for await (const ev of stream) {
          delay = 250;
          if (ev.sequence <= this.lastSequence) continue;
          this.lastSequence = ev.sequence;
          this.deliver(ev);
        }
        if (signal.aborted) return;
        this.setState("reconnecting", "the stream ended");
      } catch (err) {
        if (signal.aborted) return;
        const ce = ConnectError.from(err);
        if (ce.code === Code.Unauthenticated) return;
        this.setState("reconnecting", ce.rawMessage);
      }
      const wait = delay * (0.75 + Math.random() * 0.5);
      delay = Math.min(delay * 2, 10_000);
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  // Events arriving in one burst reach the views as one batch, once per animation frame at most.
  private deliver(ev: Event): void {
    this.batch.push(ev);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const flush = () => {
      this.flushScheduled = false;
      const events = this.batch;
      this.batch = [];
      for (const l of this.eventListeners) l(events);
    };
    if (typeof requestAnimationFrame === "function" && document.visibilityState === "visible") {
      requestAnimationFrame(flush);
    } else {
      setTimeout(flush, 50);
    }
  }
}

/** The dashboard's stream. */
export const live = new LiveEvents();
