/**
 * Reads a client's request stream until the call is aborted. A handler waiting for the next message
 * of a quiet stream would otherwise never notice a deadline, a cancel or a shutdown; here the wait
 * ends at once and the abort's reason (e.g. the shutdown's UNAVAILABLE) is thrown.
 */
import { abortReason, throwIfAborted } from "./abort-reason.js";

export async function* abortable<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  throwIfAborted(signal);
  const it = source[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  // Keeps an abort that arrives while nobody awaits from becoming an unhandled rejection.
  aborted.catch(() => {});
  try {
    for (;;) {
      const next = await Promise.race([it.next(), aborted]);
      if (next.done) return;
      yield next.value;
      throwIfAborted(signal);
    }
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    // Not awaited: a request stream blocked on the network only settles once the call is torn down.
    void it.return?.()?.catch?.(() => {});
  }
}
