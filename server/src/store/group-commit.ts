/**
 * Group commit for a synchronous SQLite connection: writes that arrive in the same event-loop turn
 * run in one transaction (one fsync). One failing write must not undo the others, so a batch whose
 * first run fails is run again with each write inside its own savepoint; most batches never fail
 * and skip the savepoints' cost. A write's promise resolves only after the transaction is
 * committed, so an acknowledged write is on disk.
 *
 * A write may run twice (the second time after its first run was rolled back): it must only
 * change the database, or state its owner resets in `onDiscard`.
 *
 * While tracing, each transaction is a span (tracing/store-spans.ts): its parent is the call
 * whose write came first in the batch, linked to the calls of the others.
 */
import type { Context } from "@opentelemetry/api";
import type Database from "better-sqlite3";
import { captureContext } from "../tracing/active-tracer.js";
import { endTransactionSpan, startTransactionSpan } from "../tracing/store-spans.js";

interface Pending {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
  /** The store method that queued it, for the transaction's span. */
  readonly op: string;
  /** The trace context it was queued under; undefined while tracing is off. */
  readonly trace: Context | undefined;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

/** Most writes committed in one transaction. */
const maxBatch = 1000;

/** What the owner of the connection is told. */
export interface GroupCommitHooks {
  /**
   * Runs synchronously right after each successful commit (before promises resolve).
   * `partial` is true when some writes of the batch were rolled back and the rest committed.
   */
  readonly afterCommit: (partial: boolean) => void;
  /** Runs after a transaction was rolled back whole: nothing the batch wrote is stored. */
  readonly onDiscard: () => void;
}

/** Batches writes into shared transactions. */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;

  /**
   * Changes when a transaction starts and when a rollback discards writes: what a write reads
   * once and caches (the audit chain's tip) is valid only while the epoch is the same.
   */
  epoch = 0;

  /** Runs one write inside the open transaction as a savepoint (made once, not per write). */
  private readonly inSavepoint: (run: () => unknown) => unknown;

  constructor(
    private readonly db: Database.Database,
    private readonly hooks: GroupCommitHooks,
  ) {
    this.inSavepoint = db.transaction((run: () => unknown) => run());
  }

  /**
   * Queues `run` for the next commit; resolves with its result once committed. `op` names the
   * store method (the transaction span's `db.operation.name`).
   */
  submit<T>(run: () => T, op = "write"): Promise<T> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject, op, trace: captureContext() });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued now. */
  flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, maxBatch);
      // Only while tracing: the first write's trace context is then captured.
      const span =
        batch[0]?.trace === undefined
          ? undefined
          : startTransactionSpan(
              "sqlite",
              batch.map((p) => p.op),
              batch.map((p) => p.trace),
            );
      let outcomes: Outcome[];
      try {
        outcomes = this.runAll(batch);
      } catch (err) {
        // A single write's failure is its own; for more, find the ones that fail on their own.
        let failure = err;
        let retried: Outcome[] | undefined;
        if (batch.length > 1) {
          try {
            retried = this.runEachInSavepoint(batch);
          } catch (again) {
            failure = again;
          }
        }
        if (!retried) {
          endTransactionSpan(span, failure);
          for (const p of batch) p.reject(failure);
          continue;
        }
        outcomes = retried;
      }
      endTransactionSpan(span);
      batch.forEach((p, i) => {
        const o = outcomes[i];
        if (o?.ok) p.resolve(o.value);
        else p.reject(o?.err);
      });
    }
  }

  /** Every write in one transaction; throws (all rolled back) if any one throws. */
  private runAll(batch: readonly Pending[]): Outcome[] {
    this.epoch++;
    let values: Outcome[];
    try {
      // IMMEDIATE: take the write lock up front and wait for it (busy_timeout). A deferred
      // transaction that reads first cannot be upgraded while another process (the keys or
      // audit command on the same file) writes, and fails at once with SQLITE_BUSY.
      values = this.db
        .transaction(() => batch.map((p): Outcome => ({ ok: true, value: p.run() })))
        .immediate();
    } catch (err) {
      this.discarded();
      throw err;
    }
    this.hooks.afterCommit(false);
    return values;
  }

  /** Every write in its own savepoint of one transaction: a throw undoes only that write. */
  private runEachInSavepoint(batch: readonly Pending[]): Outcome[] {
    this.epoch++;
    const outcomes: Outcome[] = [];
    let partial = false;
    try {
      this.db
        .transaction(() => {
          for (const p of batch) {
            try {
              outcomes.push({ ok: true, value: this.inSavepoint(p.run) });
            } catch (err) {
              this.epoch++;
              partial = true;
              outcomes.push({ ok: false, err });
            }
          }
        })
        .immediate();
    } catch (err) {
      this.discarded();
      throw err;
    }
    this.hooks.afterCommit(partial);
    return outcomes;
  }

  private discarded(): void {
    this.epoch++;
    this.hooks.onDiscard();
  }

  /** Commits what is queued and refuses further writes. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
