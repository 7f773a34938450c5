/**
 * Paces server streams per event-loop turn. Connect writes every message a handler yields from the
 * same chain of microtasks, and Node hands HTTP/2 data to the socket only when the event loop turns.
 * A stream with a backlog (a replay, a burst of events) would otherwise keep encoding until its
 * 16 KiB write buffer is full before anything is sent, and with a hundred such streams the first
 * bytes of the last one wait behind all the others (and the client's flow-control window, refilled
 * only between turns, idles meanwhile). With a budget, each stream sends a bounded share per turn and
 * then waits for the next one, by which time Node has flushed what was written.
 *
 * Two limits: a per-stream share (bytes and messages), so every stream gets a say in each turn, and
 * a time slice shared by all streams, so a turn stays short when many streams are busy at once or
 * messages are expensive (cold code right after start, garbage collection, a busy CPU). Short turns
 * also let the rest of the gateway in: the submits whose events are being fanned out get answered
 * and new requests read between turns, instead of after the whole fan-out.
 */

let nextTurnPromise: Promise<void> | undefined;
/** Resolved just before nextTurnPromise: the streams the time slice cut off before they sent. */
let firstInNextTurn: Promise<void> | undefined;
let turnCount = 0;
let turnStartedAt = 0;

/**
 * Resolves in the check phase of the event loop (setImmediate), after Node has written the HTTP/2
 * data queued in this turn. One promise is shared by every caller in the same turn, and streams
 * resume in the order they started waiting; with `first`, before every stream that waits without
 * it.
 */
export function nextTurn(first = false): Promise<void> {
  if (!nextTurnPromise) {
    // The first caller in a turn starts its clock (or the check phase below, when streams resume).
    turnStartedAt = performance.now();
    let resolveFirst: () => void = () => {};
    firstInNextTurn = new Promise((resolve) => {
      resolveFirst = resolve;
    });
    nextTurnPromise = new Promise((resolve) =>
      setImmediate(() => {
        nextTurnPromise = undefined;
        firstInNextTurn = undefined;
        turnCount++;
        turnStartedAt = performance.now();
        // Reactions run in the order their promises resolve: the cut-off streams go first.
        resolveFirst();
        resolve();
      }),
    );
  }
  return first ? (firstInNextTurn as Promise<void>) : nextTurnPromise;
}

/** What one stream may send per turn, and how long a turn may last, before streams wait. */
export interface TurnLimits {
  /** Approximate encoded bytes per stream. */
  readonly bytes: number;
  /** Messages per stream. */
  readonly messages: number;
  /** Milliseconds of a turn, shared by every stream; checked before each message and page read. */
  readonly sliceMs: number;
}

/**
 * Defaults: 16 KiB is Node's write buffer per stream, so a stream within budget never waits for
 * 'drain'; 16 messages and 5 ms keep turns short enough for a hundred busy streams to each get
 * their first events out in the first few turns, and long enough that the work of a turn (a flush
 * per connection, one wake-up per stream) stays a small share of it.
 */
export const defaultTurnLimits: TurnLimits = { bytes: 16 * 1024, messages: 16, sliceMs: 5 };

/**
 * One stream's budget: create one per stream, and before each message it sends, wait while `spend`
 * returns a promise (the next turn): `for (let w = b.spend(n); w; w = b.spend(n)) await w;`.
 * Asking again after the wait matters: every waiting stream resumes at the start of the same turn,
 * and the first ones may already use up its time.
 */
export class TurnBudget {
  private turn = -1;
  private bytes = 0;
  private messages = 0;

  constructor(private readonly limits: TurnLimits = defaultTurnLimits) {}

  /**
   * Charges one message of about `bytes` and returns undefined while the budget lasts; otherwise
   * charges nothing and returns a promise of the next turn.
   */
  spend(bytes: number): Promise<void> | undefined {
    const wait = this.startOrContinueTurn();
    if (this.messages >= this.limits.messages || this.bytes >= this.limits.bytes) return wait;
    if (performance.now() - turnStartedAt > this.limits.sliceMs) return this.cutOff(wait);
    this.bytes += bytes;
    this.messages++;
    return undefined;
  }

  /**
   * Before work that sends nothing yet but takes time (e.g. reading a page of the event log): a
   * promise of the next turn when this turn's time is used up, otherwise undefined. Ask again after
   * waiting, as with `spend`.
   */
  checkpoint(): Promise<void> | undefined {
    const wait = this.startOrContinueTurn();
    return performance.now() - turnStartedAt > this.limits.sliceMs ? this.cutOff(wait) : undefined;
  }

  /**
   * The turn's time is up. A stream that sent nothing in it goes first in the next turn: streams
   * that send their share without pausing would otherwise use up every turn's time in the same
   * order, and the ones after them would never get a say.
   */
  private cutOff(wait: Promise<void>): Promise<void> {
    return this.messages === 0 ? nextTurn(true) : wait;
  }

  /** Resets the stream's share in a new turn; returns the next turn (scheduling it if needed). */
  private startOrContinueTurn(): Promise<void> {
    // Scheduling the shared setImmediate now is also what makes a later call see a new turn.
    const wait = nextTurn();
    if (this.turn !== turnCount) {
      this.turn = turnCount;
      this.bytes = 0;
      this.messages = 0;
    }
    return wait;
  }
}
