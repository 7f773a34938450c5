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
import { isPushable, type PushSink, pushTo } from "../push-stream.js";

/**
 * What an interceptor hooks onto a response stream. An object rather than two callbacks: an
 * interceptor whose hook holds state per call makes one small object, and one that holds none
 * shares a single hook between all calls; an open stream holds its hooks for as long as it is open.
 */
export interface StreamHook {
  /** Maps an error raised while iterating; without it, the error is left as it is. */
  map?(err: unknown): unknown;
  /** Told how the stream ended: undefined after the last message, the mapped error, or `aborted`. */
  onEnd?(err: unknown, aborted: boolean): void;
}

const kHooks = Symbol("stream end hooks");

type Hooked<T> = AsyncIterable<T> & { [kHooks]?: StreamHook[] };

/**
 * A stream made hookable before any interceptor saw it. Iterating it runs the shared generator;
 * a server that drives the stream itself runs the hooks without that generator (forEachHooked).
 */
class HookableStream<T> implements AsyncIterable<T> {
  [kHooks]: StreamHook[] = [];

  constructor(readonly source: AsyncIterable<T>) {}

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return hooked(this.source, this[kHooks])[Symbol.asyncIterator]();
  }
}

/** `source` in the shared wrapper, with no hooks yet. */
export function hookableStream<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  if ((source as Hooked<T>)[kHooks]) return source;
  return new HookableStream(source);
}

/**
 * Consumes `stream`, calling `each` with every message until it returns false, exactly as
 * `for await` over it would: with the same hooks run at the same points. A stream made by
 * hookableStream is read straight from its source, so an open stream holds one suspended
 * generator fewer (and each message passes through one fewer).
 */
export async function forEachHooked<T>(
  stream: AsyncIterable<T>,
  each: (message: T) => boolean | Promise<boolean>,
): Promise<void> {
  if (!(stream instanceof HookableStream)) {
    for await (const m of stream) {
      if (!(await each(m))) break;
    }
    return;
  }
  const hooks: readonly StreamHook[] = stream[kHooks];
  const it = (stream.source as AsyncIterable<T>)[Symbol.asyncIterator]();
  // As the shared generator: the source's errors are mapped and told; a consumer that stops
  // (false from `each`, or a throw in it) closes the source, then every hook hears `aborted`.
  let settled = false;
  try {
    for (;;) {
      let r: IteratorResult<T>;
      try {
        r = await it.next();
      } catch (err) {
        settled = true;
        throw endWithError(hooks, err);
      }
      if (r.done) {
        settled = true;
        tellEnd(hooks, false);
        return;
      }
      if (!(await each(r.value))) break;
    }
  } finally {
    if (!settled) {
      try {
        await it.return?.();
      } catch (err) {
        settled = true;
        // biome-ignore lint/correctness/noUnsafeFinally: the generator would throw this too
        throw endWithError(hooks, err);
      }
      tellEnd(hooks, true);
    }
  }
}

/**
 * Pushes `stream` into `sink` when it is hookable and its source can push (push-stream.ts), with the
 * hooks run at the points forEachHooked runs them; returns false, doing nothing, otherwise.
 */
export function pushHooked<T>(stream: AsyncIterable<T>, sink: PushSink<T>): boolean {
  if (!(stream instanceof HookableStream)) return false;
  const source = (stream as HookableStream<T>).source;
  if (!isPushable(source)) return false;
  // The interceptors are done adding hooks: keep them in an array of their number, not in the
  // grown one (17 slots for a handful), for as long as the stream is open.
  const hooks = stream[kHooks].slice();
  stream[kHooks] = hooks;
  pushTo(source, new HookedSink(hooks, sink));
  return true;
}

/**
 * A sink behind the hooks. As in forEachHooked: the source's error is mapped and told; a consumer
 * that stops (false from `push`) or throws has the source closed, then every hook hears `aborted`,
 * and the consumer's own error, if any, is what the call ends with.
 */
class HookedSink<T> implements PushSink<T> {
  private stopped = false;
  private consumerFailed = false;
  private consumerError: unknown;

  constructor(
    private readonly hooks: readonly StreamHook[],
    private readonly sink: PushSink<T>,
  ) {}

  push(message: T): Promise<void> | undefined | false {
    if (this.stopped) return false;
    try {
      const r = this.sink.push(message);
      if (r === false) this.stopped = true;
      return r;
    } catch (err) {
      this.stopped = true;
      this.consumerFailed = true;
      this.consumerError = err;
      return false;
    }
  }

  end(error: unknown): void {
    if (this.stopped) {
      tellEnd(this.hooks, true);
      this.sink.end(this.consumerFailed ? this.consumerError : undefined);
    } else if (error === undefined) {
      tellEnd(this.hooks, false);
      this.sink.end(undefined);
    } else {
      this.sink.end(endWithError(this.hooks, error));
    }
  }
}

/** Tells every hook the stream ended without an error: after its last message, or `aborted`. */
function tellEnd(hooks: readonly StreamHook[], aborted: boolean): void {
  for (const h of hooks) h.onEnd?.(undefined, aborted);
}

/** Maps `err` through every hook in turn, telling each; returns the last mapping. */
function endWithError(hooks: readonly StreamHook[], err: unknown): unknown {
  let mapped = err;
  for (const h of hooks) {
    if (h.map) mapped = h.map(mapped);
    h.onEnd?.(mapped, false);
  }
  return mapped;
}

/**
 * `res` with its message stream hooked (see mapStreamErrors): `res` itself when its stream is
 * already the shared wrapper, otherwise a copy holding the wrapper.
 */
export function hookStream(res: StreamResponse, hook: StreamHook): StreamResponse {
  const message = mapStreamErrors(res.message, hook);
  return message === res.message ? res : { ...res, message };
}

export function mapStreamErrors<T>(source: AsyncIterable<T>, hook: StreamHook): AsyncIterable<T> {
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
    tellEnd(hooks, false);
  } catch (err) {
    settled = true;
    throw endWithError(hooks, err);
  } finally {
    if (!settled) {
      tellEnd(hooks, true);
    }
  }
}
