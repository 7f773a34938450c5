/**
 * Wraps a response stream so errors raised while iterating it pass through `map`, and `onEnd` learns
 * how the stream ended: with `undefined` after the last message, with the mapped error, or with
 * `aborted` set when the consumer stopped early (client cancel, shutdown).
 *
 * Several interceptors wrap the same stream. Instead of one async generator per interceptor, which
 * every message would pass through in turn, they share one: wrapping a stream this module made
 * adds the hooks to it. The hooks run in the order they were added (the innermost interceptor's
 * first), each seeing the error as the ones before it mapped it, as nested wrappers would.
 *
 * A server that hands the interceptors a stream it made with `hookableStream` gets it back
 * unchanged from every `hookStream`, so no interceptor copies the response (whose `header` and
 * `trailer` a copy would have to read, making them for every stream).
 */
import type { StreamResponse } from "@connectrpc/connect";

interface StreamHook {
  readonly map: (err: unknown) => unknown;
  readonly onEnd: ((err: unknown, aborted: boolean) => void) | undefined;
}

const kHooks = Symbol("stream end hooks");

type Hooked<T> = AsyncIterable<T> & { [kHooks]?: StreamHook[] };

/** Leaves an error as it is: for hooks that only want to learn how the stream ended. */
export const keepError = (err: unknown): unknown => err;

/** `source` in the shared wrapper, with no hooks yet. */
export function hookableStream<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  if ((source as Hooked<T>)[kHooks]) return source;
  const hooks: StreamHook[] = [];
  const wrapped: Hooked<T> = hooked(source, hooks);
  wrapped[kHooks] = hooks;
  return wrapped;
}

/**
 * `res` with its message stream hooked (see mapStreamErrors): `res` itself when its stream is
 * already the shared wrapper, otherwise a copy holding the wrapper.
 */
export function hookStream(
  res: StreamResponse,
  map: (err: unknown) => unknown,
  onEnd?: (err: unknown, aborted: boolean) => void,
): StreamResponse {
  const message = mapStreamErrors(res.message, map, onEnd);
  return message === res.message ? res : { ...res, message };
}

export function mapStreamErrors<T>(
  source: AsyncIterable<T>,
  map: (err: unknown) => unknown,
  onEnd?: (err: unknown, aborted: boolean) => void,
): AsyncIterable<T> {
  const hook: StreamHook = { map, onEnd };
  const shared = (source as Hooked<T>)[kHooks];
  if (shared) {
    shared.push(hook);
    return source;
  }
  const wrapped = hookableStream(source) as Hooked<T>;
  (wrapped[kHooks] as StreamHook[]).push(hook);
  return wrapped;
}

async function* hooked<T>(source: AsyncIterable<T>, hooks: readonly StreamHook[]): AsyncGenerator<T> {
  let settled = false;
  try {
    yield* source;
    settled = true;
    for (const h of hooks) h.onEnd?.(undefined, false);
  } catch (err) {
    let mapped = err;
    settled = true;
    for (const h of hooks) {
      mapped = h.map(mapped);
      h.onEnd?.(mapped, false);
    }
    throw mapped;
  } finally {
    if (!settled) {
      for (const h of hooks) h.onEnd?.(undefined, true);
    }
  }
}
