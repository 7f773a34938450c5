/**
 * The daemons connected to this gateway: one session per open StreamEvents stream, with what the
 * daemon announced, the tasks it holds, and the queue of events to send it.
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";

/** Most events queued for one daemon before its stream is ended as stuck. */
const maxOutbound = 10_000;

/** One connected daemon. */
export class DaemonSession {
  /** Tasks assigned to or running on this daemon, as far as this gateway knows. */
  readonly tasks = new Set<string>();
  /** Claims in flight for this daemon (counted against its capacity). */
  reserved = 0;
  /** Set once the daemon's hello is stored and answered; until then it gets no tasks and no lease checks. */
  ready = false;
  /** Tasks this daemon gave back, not offered to it again until the time (ms since epoch) given. */
  readonly refused = new Map<string, number>();
  /** When the daemon was last heard from (ms since epoch). */
  lastSeen = Date.now();
  /** When it was last written to the store as seen (ms since epoch). */
  lastSeenStored = Date.now();
  readonly connectedAt = Date.now();
  private readonly outbound: Event[] = [];
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private ended = false;

  constructor(
    readonly id: string,
    readonly hostname: string,
    readonly version: string,
    readonly capacity: number,
    readonly labels: Readonly<Record<string, string>>,
  ) {}

  /** Free slots: capacity minus held and reserved tasks. */
  get free(): number {
    return this.ready ? this.capacity - this.tasks.size - this.reserved : 0;
  }

  /** Whether the daemon gave `taskId` back recently. */
  refuses(taskId: string, now = Date.now()): boolean {
    const until = this.refused.get(taskId);
    if (until === undefined) return false;
    if (until > now) return true;
    this.refused.delete(taskId);
    return false;
  }

  /** Whether the daemon has every label in `wanted`. */
  matches(wanted: Readonly<Record<string, string>>): boolean {
    return Object.entries(wanted).every(([k, v]) => this.labels[k] === v);
  }

  /** Queues an event for the daemon. */
  send(ev: Event): void {
    if (this.ended || this.failure) return;
    if (this.outbound.length >= maxOutbound) {
      this.end(new Error(`daemon ${this.id} is not reading its stream`));
      return;
    }
    this.outbound.push(ev);
    this.notify();
  }

  /** Why the session ended, when the gateway ended it. */
  endReason: string | undefined;

  /** Ends the session's stream with `err` (or normally when undefined). */
  end(err?: Error): void {
    if (this.ended) return;
    if (err) this.endReason = err.message;
    this.failure = err;
    this.ended = true;
    this.notify();
  }

  /** Whether the session has ended. */
  get closed(): boolean {
    return this.ended;
  }

  /** Takes the next queued event; waits for one. Throws the session's error once drained. */
  async next(signal: AbortSignal): Promise<Event | undefined> {
    for (;;) {
      const ev = this.outbound.shift();
      if (ev) return ev;
      if (this.failure) throw this.failure;
      if (this.ended || signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        this.wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/** Sessions by daemon id. */
export class DaemonRegistry {
  private readonly sessions = new Map<string, DaemonSession>();

  /** Adds a session; returns the one it replaces (same daemon id), if any. */
  add(session: DaemonSession): DaemonSession | undefined {
    const previous = this.sessions.get(session.id);
    this.sessions.set(session.id, session);
    return previous;
  }

  /** Removes `session` if it is still the current one for its id; returns whether it was. */
  remove(session: DaemonSession): boolean {
    if (this.sessions.get(session.id) !== session) return false;
    this.sessions.delete(session.id);
    return true;
  }

  get(id: string): DaemonSession | undefined {
    return this.sessions.get(id);
  }

  has(id: string): boolean {
    return this.sessions.has(id);
  }

  all(): DaemonSession[] {
    return [...this.sessions.values()];
  }

  get size(): number {
    return this.sessions.size;
  }
}
