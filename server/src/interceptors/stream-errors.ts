/**
 * Wraps a response stream so errors raised while iterating it pass through `map`, and `onEnd` learns
 * how the stream ended: with `undefined` after the last message, with the mapped error, or with
 * `aborted` set when the consumer stopped early (client cancel, shutdown).
 *
 * Several interceptors wrap the same stream. Instead of one async generator per interceptor, which
 * every message would pass through in turn, they share one: wrapping a stream this function made
 * adds the hooks to it. The hooks run in the order they were added (the innermost interceptor's
 * first), each seeing the error as the ones before it mapped it, as nested wrappers would.
 */
interface StreamHook {
  readonly map: (err: unknown) => unknown;
  readonly onEnd: ((err: unknown, aborted: boolean) => void) | undefined;
}

const kHooks = Symbol("stream end hooks");

type Hooked<T> = AsyncIterable<T> & { [kHooks]?: StreamHook[] };

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
  const hooks = [hook];
  const wrapped: Hooked<T> = hooked(source, hooks);
  wrapped[kHooks] = hooks;
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
