/**
 * Wraps a response stream so errors raised while iterating it pass through `map`, and `onEnd` learns
 * how the stream ended: with `undefined` after the last message, with the mapped error, or with
 * `aborted` set when the consumer stopped early (client cancel, shutdown).
 */
export async function* mapStreamErrors<T>(
  source: AsyncIterable<T>,
  map: (err: unknown) => unknown,
  onEnd?: (err: unknown, aborted: boolean) => void,
): AsyncIterable<T> {
  let settled = false;
  try {
    yield* source;
    settled = true;
    onEnd?.(undefined, false);
  } catch (err) {
    const mapped = map(err);
    settled = true;
    onEnd?.(mapped, false);
    throw mapped;
  } finally {
    if (!settled) {
      onEnd?.(undefined, true);
    }
  }
}
