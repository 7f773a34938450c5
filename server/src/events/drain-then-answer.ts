/**
 * Handles every message a client sent, even when the client cancels the call. A Spage core ends its
 * progress stream by cancelling it, not by half-closing; the updates it sent just before must still
 * be stored. So the request stream is read ahead as fast as it arrives (Node drops data still
 * buffered in a stream that is reset), each message is handled in order by a loop that outlives the
 * call, and the answers are streamed back for as long as the call lives.
 */
import { throwIfAborted } from "./abort-reason.js";

export async function* drainThenAnswer<I, O>(
  requests: AsyncIterable<I>,
  signal: AbortSignal,
  handle: (message: I) => Promise<O>,
  onDrained?: () => void,
): AsyncGenerator<O> {
  const received: I[] = [];
  const answers: O[] = [];
  let readerDone = false;
  let workerDone = false;
  let wakeWorker: (() => void) | undefined;
  let wakeCaller: (() => void) | undefined;
  const kickWorker = () => {
    const w = wakeWorker;
    wakeWorker = undefined;
    w?.();
  };
  const kickCaller = () => {
    const w = wakeCaller;
    wakeCaller = undefined;
    w?.();
  };

  void (async () => {
    try {
      for await (const m of requests) {
        received.push(m);
        kickWorker();
      }
    } catch {
      // A cancelled or broken request stream ends here; what arrived before is handled below.
    } finally {
      readerDone = true;
      kickWorker();
    }
  })();

  void (async () => {
    try {
      for (;;) {
        const m = received.shift();
        if (m === undefined) {
          if (readerDone) return;
          await new Promise<void>((r) => {
            wakeWorker = r;
          });
          continue;
        }
        const answer = await handle(m);
        if (!signal.aborted) answers.push(answer);
        kickCaller();
      }
    } finally {
      workerDone = true;
      onDrained?.();
      kickCaller();
    }
  })();

  const onAbort = () => kickCaller();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const next = answers.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      throwIfAborted(signal);
      if (workerDone) return;
      await new Promise<void>((r) => {
        wakeCaller = r;
      });
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
