/**
 * Spans of store transactions (`store.transaction`), one per transaction as the database sees it:
 * on SQLite one per group-commit batch, on PostgreSQL one per BEGIN … COMMIT or per write that is a
 * statement of its own. A transaction is the child of the RPC span of the call it runs for. A group
 * commit batch runs the writes of several calls: its parent is the call whose write came first, and
 * it links to the spans of the other calls, so each call's trace reaches the shared commit and the
 * batch size is on the span (`spage.store.writes`).
 *
 * While the gateway does not trace, `activeTracer()` is undefined and each entry point costs that
 * one check.
 */
import {
  type Context,
  context,
  type Link,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { activeTracer } from "./active-tracer.js";

/** The `db.system` values of the two backends. */
export type DbSystem = "sqlite" | "postgresql";

/** The span name of every store transaction. */
export const storeSpanName = "store.transaction";

/**
 * Starts the span of a transaction holding the writes `operations` (the store methods, in order),
 * queued under the trace contexts `parents` (same order; undefined where none was captured).
 * Undefined when tracing is off.
 */
export function startTransactionSpan(
  system: DbSystem,
  operations: readonly string[],
  parents: readonly (Context | undefined)[],
): Span | undefined {
  const tracer = activeTracer();
  if (!tracer) return undefined;
  // The first write made under a span is the parent; a batch of background writes only (sweeps,
  // the dispatcher) is a root of its own.
  const first =
    parents.find((p) => p !== undefined && trace.getSpan(p) !== undefined) ??
    parents.find((p) => p !== undefined) ??
    context.active();
  const firstSpan = trace.getSpan(first)?.spanContext().spanId;
  const links: Link[] = [];
  const seen = new Set<string>(firstSpan ? [firstSpan] : []);
  for (const p of parents) {
    const sc = p && trace.getSpan(p)?.spanContext();
    if (sc && !seen.has(sc.spanId)) {
      seen.add(sc.spanId);
      links.push({ context: sc });
    }
  }
  const names = [...new Set(operations)];
  return tracer.startSpan(
    storeSpanName,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "db.system": system,
        "db.system.name": system,
        "db.operation.name": names.join(" "),
        "spage.store.writes": operations.length,
      },
      links,
    },
    first,
  );
}

/** Ends a transaction's span: status ERROR with the message when it failed (rolled back). */
export function endTransactionSpan(span: Span | undefined, err?: unknown): void {
  if (!span) return;
  if (err !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/**
 * Runs an asynchronous write of its own (one PostgreSQL transaction or statement) under a span of
 * its own; with tracing off, just runs it.
 */
export function tracedWrite<T>(system: DbSystem, operation: string, run: () => Promise<T>): Promise<T> {
  if (!activeTracer()) return run();
  const span = startTransactionSpan(system, [operation], [context.active()]);
  return run().then(
    (value) => {
      endTransactionSpan(span);
      return value;
    },
    (err: unknown) => {
      endTransactionSpan(span, err);
      throw err;
    },
  );
}
