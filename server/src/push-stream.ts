/**
 * A response stream that can also push its messages to a sink, for a server that writes them itself
 * (the fast path). Pulled with `for await`, a stream that waits for its next message holds a chain of
 * suspended generators and promises for as long as it waits; pushed, a waiting stream is data only
 * (its queue and a wake-up callback), which is what ten thousand idle watchers cost.
 */

/** Where a pushed stream's messages go. */
export interface PushSink<T> {
  /**
   * Takes one message: undefined to go on at once, a promise to wait for before the next message,
   * false to stop (the consumer is gone or failed).
   */
  push(message: T): Promise<void> | undefined | false;
  /**
   * The stream is over, called exactly once: with undefined when it ended cleanly or was stopped by
   * `push` returning false, otherwise with the error it ended with.
   */
  end(error: unknown): void;
}

/** The method a pushable stream implements. */
export const kPushTo: unique symbol = Symbol("push to a sink");

/** A stream that can push. */
export interface Pushable<T> {
  [kPushTo](sink: PushSink<T>): void;
}

/** Whether `stream` can push. */
export function isPushable<T>(stream: AsyncIterable<T>): stream is AsyncIterable<T> & Pushable<T> {
  return typeof (stream as Partial<Pushable<T>>)[kPushTo] === "function";
}

/** Starts `stream` pushing into `sink`. */
export function pushTo<T>(stream: Pushable<T>, sink: PushSink<T>): void {
  stream[kPushTo](sink);
}
