/**
 * Group commit for a synchronous SQLite connection: writes that arrive in the same event-loop turn
 * run in one transaction (one fsync), each inside its own savepoint so one failing write does not
 * undo the others. A write's promise resolves only after the transaction is committed, so an
 * acknowledged write is on disk.
 */
import type Database from "better-sqlite3";

interface Pending {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** Most writes committed in one transaction. */
const maxBatch = 1000;

/** Batches writes into shared transactions. */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;

  /** Runs one write inside the open transaction as a savepoint (made once, not per write). */
  private readonly inSavepoint: (run: () => unknown) => unknown;

  /** `afterCommit` runs synchronously right after each successful commit (before promises resolve). */
  constructor(
    private readonly db: Database.Database,
    private readonly afterCommit: () => void,
  ) {
    this.inSavepoint = db.transaction((run: () => unknown) => run());
  }

  /** Queues `run` for the next commit; resolves with its result once committed. */
  submit<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
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
      const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
      try {
        // IMMEDIATE: take the write lock up front and wait for it (busy_timeout). A deferred
        // transaction that reads first cannot be upgraded while another process (the keys or
        // audit command on the same file) writes, and fails at once with SQLITE_BUSY.
        this.db
          .transaction(() => {
            for (const p of batch) {
              try {
                // A nested transaction is a savepoint: a throw undoes only this write.
                outcomes.push({ ok: true, value: this.inSavepoint(p.run) });
              } catch (err) {
                outcomes.push({ ok: false, err });
              }
            }
          })
          .immediate();
      } catch (err) {
        for (const p of batch) p.reject(err);
        continue;
      }
      this.afterCommit();
      batch.forEach((p, i) => {
        const o = outcomes[i];
        if (o?.ok) p.resolve(o.value);
        else p.reject(o?.err);
      });
    }
  }

  /** Commits what is queued and refuses further writes. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
