/**
 * One core stream as the agent's relay passes it on: the same bidirectional method opened on the
 * gateway with the core stream's first message, for any of SpageExecution's progress streams
 * (StreamProgress of the task era, StreamTaskProgress and StreamPlayProgress of the play era). The
 * gateway answers every message once, in order, so replies are matched to messages first in,
 * first out; a message whose passing on failed (the gateway restarted) is sent again on a new
 * stream until the gateway answers it or the relay stops.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "./async-queue.js";

/** Opens the method on the gateway: its request stream, and the relay's stop signal. */
export type OpenUpstream<I, O> = (requests: AsyncIterable<I>, signal: AbortSignal) => AsyncIterable<O>;

/** A core stream's twin on the gateway, opened lazily and again after a break. */
export class UpstreamStream<I, O> {
  private queue: AsyncQueue<I> | undefined;
  private readonly waiting: { resolve: (r: O) => void; reject: (e: unknown) => void }[] = [];
  private done: Promise<void> | undefined;

  constructor(
    private readonly openUpstream: OpenUpstream<I, O>,
    private readonly stopping: AbortSignal,
    private readonly maxRetryDelayMs: number,
  ) {}

  /** Passes `m` on and resolves with the gateway's reply, sending it again after a broken stream. */
  async send(m: I): Promise<O> {
    let delay = 100;
    for (;;) {
      try {
        return await this.once(m);
      } catch (err) {
        const ce = ConnectError.from(err);
        // Refused credentials or a closing relay do not heal by retrying.
        if (this.stopping.aborted || ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied)
          throw ce;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, this.maxRetryDelayMs);
      }
    }
  }

  /** Half-closes the gateway stream once the core's stream is over, and waits for it to end. */
  async close(): Promise<void> {
    this.queue?.end();
    await this.done;
  }

  private once(m: I): Promise<O> {
    const queue = this.open();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      queue.push(m);
    });
  }

  private open(): AsyncQueue<I> {
    if (this.queue) return this.queue;
    const queue = new AsyncQueue<I>();
    this.queue = queue;
    this.done = (async () => {
      try {
        for await (const reply of this.openUpstream(queue, this.stopping)) {
          this.waiting.shift()?.resolve(reply);
        }
        if (this.waiting.length > 0)
          throw new ConnectError("the gateway ended the stream early", Code.Unavailable);
      } catch (err) {
        for (const w of this.waiting.splice(0)) w.reject(err);
      } finally {
        if (this.queue === queue) this.queue = undefined;
        queue.end();
      }
    })();
    return queue;
  }
}
