/**
 * The W3C trace context header as the gateway reads and writes it outside the propagator: the
 * `traceparent` a task carries to its daemon and process. Small enough to keep here rather than
 * load @opentelemetry/core where tracing may be off.
 */
import { isSpanContextValid, type SpanContext } from "@opentelemetry/api";

/** version-traceid-spanid-flags, lower-case hex (W3C Trace Context, version 00). */
const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** `00-<trace id>-<span id>-<flags>` for a valid span context, else undefined. */
export function formatTraceparent(sc: SpanContext): string | undefined {
  if (!isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** Whether `value` is a version-00 traceparent with non-zero ids; anything else is not passed on. */
export function isTraceparent(value: string | undefined): value is string {
  const m = value === undefined ? null : traceparentPattern.exec(value);
  return m !== null && !/^0+$/.test(m[1] as string) && !/^0+$/.test(m[2] as string);
}
