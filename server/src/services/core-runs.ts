/**
 * Liveness and end of core-only runs: runs a Spage core reports on its own, with no daemon. Such a
 * run is alive while a StreamProgress stream of it is open, however long the core stays silent; a
 * core that vanishes without closing is cut by the listener's HTTP/2 keepalive pings, which ends
 * its stream. When the run's last stream ends, the core has a grace to reconnect and continue; after
 * it the run ends by what the core reported (coreRunOutcome), or goes LOST and follows its lost-task
 * policy when the connection dropped while a step was still running.
 *
 * The gateway holding a run's stream records it in the store and renews the record while the stream
 * stays open, so every gateway sharing the store sees which runs are alive; a record no longer
 * renewed (that gateway died) counts as a dropped stream. Runs started by a daemon are not tracked
 * here: the daemon's report ends them and its lease covers their liveness.
 */
import type { FastifyBaseLogger } from "fastify";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { DomainError } from "../domain/errors.js";
import { coreRunOutcome, midStep, playWithoutCompletion } from "../domain/run-outcome.js";
import type { CoreStreamEnd, TaskRecord } from "../store/task-store.js";
import { gatewayStartedAt, lostThenPolicy } from "./daemon-tasks.js";
import { statusChange } from "./status-change.js";
import type { Decision, TaskWriter } from "./task-writer.js";

/** Timing of core-only runs. */
export interface CoreRunTimings {
  /** Time a core whose stream ended has to open a new one before its run ends. */
  readonly graceMs: number;
  /** Time a core whose connection dropped mid-step has to come back before its run is LOST. */
  readonly lostGraceMs: number;
  /** A stream record not renewed for this long counts as dropped (its gateway is gone). */
  readonly leaseMs: number;
}

/** The progress streams of one call: the core-only runs it carried updates of. */
export interface CoreStreamLink {
  /** Tells that the stream carried an update of a core-only run; repeats are ignored. */
  attach(taskId: string): void;
  /** The stream ended: how the client ended it. */
  end(how: CoreStreamEnd): void;
}

/** Whether a task is a core-only run that is still going. */
export function isLiveCoreRun(rec: TaskRecord): boolean {
  const s = rec.task.status;
  return rec.task.daemonId === "" && (s === TaskStatus.RUNNING || s === TaskStatus.CANCELING);
}

/** Tracks the core-only runs whose streams this gateway holds, and ends those whose core is gone. */
export class CoreRuns {
  /** Open streams per run held here. */
  private readonly open = new Map<string, number>();
  /** The last store write per run, so a run's writes land in the order they were made. */
  private readonly writes = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly writer: TaskWriter,
    readonly timings: CoreRunTimings,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Starts renewing the records of the streams held here (three times per lease). */
  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.renew(), Math.max(50, Math.floor(this.timings.leaseMs / 3)));
    this.timer.unref();
  }

  /**
   * Stops renewing. Streams that end from now on (the gateway is shutting down) are not recorded
   * as ended: their cores may reconnect elsewhere, and the records go stale if they do not.
   */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Number of core-only runs with a stream open here. */
  get size(): number {
    return this.open.size;
  }

  /** A link for one progress stream. */
  link(): CoreStreamLink {
    // Made on the first update of a core-only run: a stream of a daemon's run holds none.
    let runs: Set<string> | undefined;
    return {
      attach: (taskId) => {
        if (runs?.has(taskId)) return;
        runs ??= new Set();
        runs.add(taskId);
        const n = this.open.get(taskId) ?? 0;
        this.open.set(taskId, n + 1);
        if (n === 0) this.write(taskId, () => this.writer.store.coreStreamsOpen([taskId]));
      },
      end: (how) => {
        for (const taskId of runs ?? []) {
          const n = (this.open.get(taskId) ?? 1) - 1;
          if (n > 0) {
            this.open.set(taskId, n);
            continue;
          }
          this.open.delete(taskId);
          if (!this.stopped) this.write(taskId, () => this.writer.store.coreStreamEnded(taskId, how));
        }
        runs = undefined;
      },
    };
  }

  /**
   * Ends the core-only runs whose core is gone: the stream ended (or its record went stale) and the
   * grace passed without a new one. Returns how many ended.
   */
  async endDisconnected(now = new Date()): Promise<number> {
    const { graceMs, lostGraceMs, leaseMs } = this.timings;
    const runs = await this.writer.store.disconnectedCoreRuns(new Date(now.getTime() - leaseMs), 100);
    let n = 0;
    for (const { record, end, since } of runs) {
      const id = record.task.id;
      if (this.open.has(id)) continue; // a stream of it is open here; its record is being renewed
      const dropped = end === "dropped" || end === "stale";
      const lost = dropped && midStep(record.task) !== "";
      // A stale record's gateway stopped renewing it a lease ago at most, and a core cannot
      // reconnect to a gateway that was down: the grace starts no earlier than a lease after start.
      const from =
        end === "stale" ? Math.max(since.getTime() + leaseMs, gatewayStartedAt + leaseMs) : since.getTime();
      const grace = lost ? lostGraceMs : graceMs;
      if (now.getTime() - from < grace) continue;
      try {
        await this.writer.mutate(id, (cur) => {
          if (!isLiveCoreRun(cur) || this.open.has(id)) return undefined;
          return lost
            ? lostThenPolicy(cur, lostReason(cur, end, grace))
            : endedRun(cur, `the core's stream ended (${endText(end)})`);
        });
        n++;
      } catch (err) {
        // A run that moved on meanwhile is skipped, not an error.
        if (!(err instanceof DomainError)) throw err;
      }
    }
    return n;
  }

  private renew(): void {
    if (this.open.size === 0 || this.stopped) return;
    const ids = [...this.open.keys()];
    this.writer.store.coreStreamsOpen(ids).catch((err: unknown) => {
      this.log.error({ err, runs: ids.length }, "core stream records not renewed");
    });
  }

  private write(taskId: string, op: () => Promise<void>): void {
    const next = (this.writes.get(taskId) ?? Promise.resolve())
      .then(op)
      .catch((err: unknown) => this.log.error({ err, task: taskId }, "core stream record not written"));
    this.writes.set(taskId, next);
    void next.finally(() => {
      if (this.writes.get(taskId) === next) this.writes.delete(taskId);
    });
  }
}

/** The run's end from what its core reported (a play must have reported its completion). */
function endedRun(rec: TaskRecord, why: string): Decision {
  const step = midStep(rec.task);
  const outcome =
    rec.task.era === "play"
      ? playWithoutCompletion(rec.task, why)
      : coreRunOutcome(rec.task, `interrupted: ${why} while it was running`);
  const reason = step ? `${why} while ${step} was running` : why;
  return statusChange(rec, outcome.status, outcome.error ? { reason, error: outcome.error } : { reason }, {
    error: outcome.error,
    hosts: outcome.hosts,
    result: outcome.result,
    ...(outcome.steps ? { steps: outcome.steps } : {}),
  });
}

function lostReason(rec: TaskRecord, end: CoreStreamEnd | "stale", graceMs: number): string {
  const how = end === "stale" ? "the gateway holding its stream stopped answering" : "its connection dropped";
  return `the core vanished: ${how} while ${midStep(rec.task)} was running, and it did not reconnect within ${Math.round(graceMs / 1000)}s; the outcome is unknown`;
}

function endText(end: CoreStreamEnd | "stale"): string {
  switch (end) {
    case "closed":
      return "half-closed by the core";
    case "canceled":
      return "canceled by the core";
    case "dropped":
      return "its connection closed";
    default:
      return "the gateway holding it stopped answering";
  }
}
