/**
 * The tracer of the running gateway, for the code that makes spans outside the interceptor chain
 * (store transactions) or reads the current span (a submit storing its traceparent). Undefined while
 * the gateway does not trace: each of those places then costs one check and nothing else. Only the
 * OpenTelemetry API is imported here; the SDK is loaded by tracer-setup.ts, and only when tracing
 * is on.
 *
 * One per process, as OpenTelemetry's own global tracer provider and context manager are: a
 * process runs one tracing gateway (tests start them one at a time).
 */
import { type Context, context, type Tracer, trace } from "@opentelemetry/api";
import { formatTraceparent } from "./trace-context.js";

let current: Tracer | undefined;

/** Sets (or with undefined, clears) the tracer; tracer-setup.ts calls it when tracing starts and stops. */
export function setActiveTracer(tracer: Tracer | undefined): void {
  current = tracer;
}

/** The running gateway's tracer, or undefined when it does not trace. */
export function activeTracer(): Tracer | undefined {
  return current;
}

/**
 * The caller's trace context while tracing is on, else undefined; kept with work that runs later
 * in another turn of the event loop (a write queued for group commit).
 */
export function captureContext(): Context | undefined {
  return current ? context.active() : undefined;
}

/**
 * The W3C `traceparent` naming the current span (the RPC being served) as the parent, or
 * undefined when tracing is off or no span is current.
 */
export function currentTraceparent(): string | undefined {
  if (!current) return undefined;
  const span = trace.getActiveSpan();
  return span ? formatTraceparent(span.spanContext()) : undefined;
}
