/**
 * Learning that a call was aborted (deadline, client gone, shutdown, or its end) without holding an
 * AbortSignal. Connect's handler gives every call a signal; the fast path makes one only when read,
 * and an open stream that holds one pays for an EventTarget with its listener tables for as long as
 * it is open. Code that only needs to hear the abort asks through `whenAborted`, which both paths
 * answer: the fast path's context directly, Connect's through the call's signal.
 */

/**
 * Told the abort's reason: a function, or an object whose `aborted` method is called (an object that
 * already holds the call's state then needs no closure of its own).
 */
export type AbortListener = ((reason: unknown) => void) | { aborted(reason: unknown): void };

/** Tells `listener` the abort's reason. */
export function tellAborted(listener: AbortListener, reason: unknown): void {
  if (typeof listener === "function") listener(reason);
  else listener.aborted(reason);
}

/** Something that tells a listener once when its call is aborted (the fast path's context). */
export interface AbortNotifier {
  /** Tells `listener` the abort's reason once the call is aborted; at once if it already is. */
  whenAborted(listener: AbortListener): void;
}

/** Tells `listener` once when the call of `target` (a request or a handler context) is aborted. */
export function whenAborted(target: { readonly signal: AbortSignal }, listener: AbortListener): void {
  const notifier = target as { readonly signal: AbortSignal } & Partial<AbortNotifier>;
  if (typeof notifier.whenAborted === "function") {
    notifier.whenAborted(listener);
    return;
  }
  const signal = target.signal;
  if (signal.aborted) tellAborted(listener, signal.reason);
  else signal.addEventListener("abort", () => tellAborted(listener, signal.reason), { once: true });
}
