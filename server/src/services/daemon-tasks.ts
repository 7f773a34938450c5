/**
 * What daemons do to tasks: claim, start, report progress, output and outcomes, give back, cancel;
 * and what happens to a task when its daemon vanishes (requeue before start, LOST then the lost-task
 * policy after the grace window) or never confirms a cancel. Every change is a conditional update
 * through TaskWriter, and every report is checked against the task's current daemon.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { openAttempt } from "../domain/attempts.js";
import { DomainError, FailedPreconditionError, InvalidArgumentError } from "../domain/errors.js";
import { activeStates, statusName, terminalStates } from "../domain/task-state.js";
import type { TaskPatch, TaskRecord } from "../store/task-store.js";
import { chainChanges, statusChange } from "./status-change.js";
import type { Decision, TaskWriter } from "./task-writer.js";

/** Timing of daemon leases and cancellations. */
export interface DaemonTimings {
  /** A connected daemon not heard from for this long counts as gone. */
  readonly leaseMs: number;
  /** How long a gone daemon's running tasks wait for it to come back before they are LOST. */
  readonly lostGraceMs: number;
  /** How long a daemon has to confirm a cancel. */
  readonly cancelGraceMs: number;
}

/** When this gateway process started: its own downtime is not held against daemons or cores. */
export const gatewayStartedAt = Date.now();

/** A daemon's report that a task ended. */
export interface DaemonOutcome {
  readonly status: TaskStatus.COMPLETED | TaskStatus.FAILED;
  readonly exitCode: number;
  readonly error: string;
  readonly result: Readonly<Record<string, string>>;
}

/** Task operations driven by daemons and their leases. */
export class DaemonTasks {
  constructor(
    private readonly writer: TaskWriter,
    readonly timings: DaemonTimings,
  ) {}

  /** Hands a PENDING task to a daemon; undefined if someone else took it first. */
  async claim(rec: TaskRecord, daemonId: string): Promise<TaskRecord | undefined> {
    if (rec.task.status !== TaskStatus.PENDING) return undefined;
    const attempt = rec.task.attempt + 1;
    const change = statusChange(
      rec,
      TaskStatus.ASSIGNED,
      {},
      {
        daemonId,
        attempt,
        attempts: openAttempt(rec.task.attempts, attempt, daemonId, new Date()),
        outputSeq: 0,
      },
    );
    const res = await this.writer.store.updateTask(
      rec.task.id,
      { status: rec.task.status, version: rec.version },
      change.patch,
      [
        ...change.events.map((e) => ({ ...e, data: { ...e.data, daemon_id: daemonId } })),
        {
          type: "task.assigned",
          taskId: rec.task.id,
          data: { daemon_id: daemonId, attempt: String(attempt) },
        },
      ],
    );
    if (!res) return undefined;
    this.writer.bus.publish(res.events);
    return res.record;
  }

  /** The daemon started the work: ASSIGNED becomes RUNNING. */
  async started(taskId: string, daemonId: string, pid: string): Promise<void> {
    await this.owned(taskId, daemonId, (rec) => {
      if (rec.task.status !== TaskStatus.ASSIGNED) return undefined;
      return statusChange(rec, TaskStatus.RUNNING, pid ? { pid } : {});
    });
  }

  /** A progress figure and message from the daemon. */
  async progress(taskId: string, daemonId: string, progress: number, message: string): Promise<void> {
    await this.owned(taskId, daemonId, (rec) => {
      const patch: TaskPatch =
        Number.isFinite(progress) && progress >= 0 && progress <= 100 ? { progress } : {};
      const data: Record<string, string> = { progress: String(progress), message, daemon_id: daemonId };
      const base =
        rec.task.status === TaskStatus.ASSIGNED ? statusChange(rec, TaskStatus.RUNNING) : undefined;
      return {
        patch: { ...base?.patch, ...patch },
        events: [...(base?.events ?? []), { type: "task.progress", taskId, data }],
      };
    });
  }

  /**
   * A numbered chunk of the task's output. A chunk at or below the highest number stored is a
   * repeat (sent again after a reconnect) and is dropped; returns whether it was stored.
   */
  async output(
    taskId: string,
    daemonId: string,
    seq: number,
    stream: string,
    line: string,
  ): Promise<boolean> {
    if (!Number.isSafeInteger(seq) || seq < 1)
      throw InvalidArgumentError.field("seq", "must be a whole number from 1");
    let stored = false;
    await this.owned(
      taskId,
      daemonId,
      (rec) => {
        if (seq <= rec.outputSeq) return undefined;
        stored = true;
        return {
          patch: { outputSeq: seq },
          events: [
            { type: "task.output", taskId, data: { daemon_id: daemonId, seq: String(seq), stream, line } },
          ],
        };
      },
      undefined,
      // Output may trail the end of the run (a core's own end can arrive first): the daemon of the
      // last attempt may still add it, as history.
      lastRanOn(daemonId),
    );
    return stored;
  }

  /**
   * The daemon reports the run's outcome. A repeat of the recorded outcome is accepted; a different
   * one for a run that already ended (its core ended it first, e.g. a play's own COMPLETED) is
   * refused saying so, with the state it ended in: the first end stands.
   */
  async finished(taskId: string, daemonId: string, outcome: DaemonOutcome): Promise<void> {
    const result = { ...outcome.result, exit_code: String(outcome.exitCode) };
    await this.owned(
      taskId,
      daemonId,
      (rec) => {
        const from = rec.task.status;
        if (terminalStates.has(from)) {
          throw new FailedPreconditionError(
            `task ${taskId} already ended as ${statusName(from)}; cannot report ${statusName(outcome.status)}`,
            { task_id: taskId, status: statusName(from) },
          );
        }
        if (from === TaskStatus.ASSIGNED) {
          return chainChanges(
            rec,
            { to: TaskStatus.RUNNING },
            {
              to: outcome.status,
              extra: outcome.error ? { error: outcome.error } : {},
              more: { result, error: outcome.error },
            },
          );
        }
        return statusChange(rec, outcome.status, outcome.error ? { error: outcome.error } : {}, {
          result,
          error: outcome.error,
        });
      },
      (rec) => rec.task.status === outcome.status,
      lastRanOn(daemonId),
    );
  }

  /** The daemon confirms it stopped the task. */
  async canceled(taskId: string, daemonId: string): Promise<void> {
    await this.owned(
      taskId,
      daemonId,
      (rec) =>
        statusChange(
          rec,
          TaskStatus.CANCELED,
          { reason: "canceled on the daemon" },
          { error: rec.task.error || "canceled" },
        ),
      (rec) => terminalStates.has(rec.task.status),
    );
  }

  /** The daemon gives an assigned task back; it returns to the queue. */
  async rejected(taskId: string, daemonId: string, reason: string): Promise<void> {
    await this.owned(taskId, daemonId, (rec) => {
      if (rec.task.status !== TaskStatus.ASSIGNED) {
        throw new FailedPreconditionError(
          `task ${taskId} is ${statusName(rec.task.status)}; only an assigned task can be given back`,
        );
      }
      return statusChange(
        rec,
        TaskStatus.PENDING,
        { reason: reason || "rejected by the daemon" },
        { error: "" },
      );
    });
  }

  /** A daemon's stream closed: its assigned (not started) tasks go back to the queue at once. */
  async requeueAssigned(daemonId: string, reason: string): Promise<number> {
    let n = 0;
    for (const rec of await this.writer.store.tasksOfDaemon(daemonId)) {
      if (rec.task.status !== TaskStatus.ASSIGNED) continue;
      await this.settle(() =>
        this.writer.mutate(rec.task.id, (cur) =>
          cur.task.status === TaskStatus.ASSIGNED && cur.task.daemonId === daemonId
            ? statusChange(cur, TaskStatus.PENDING, { reason }, { error: "" })
            : undefined,
        ),
      );
      n++;
    }
    return n;
  }

  /**
   * Moves on the tasks of daemons that are gone: assigned ones back to the queue, running ones to
   * LOST once the grace window has passed, then their lost-task policy. `isConnectedHere` tells
   * which daemons hold a stream on this gateway (their tasks are never orphans).
   */
  async handleOrphans(now: Date, isConnectedHere: (daemonId: string) => boolean): Promise<number> {
    const orphans = await this.writer.store.orphanedTasks(now, this.timings.leaseMs, 100);
    let n = 0;
    for (const { record, goneSince } of orphans) {
      const daemonId = record.task.daemonId;
      if (daemonId && isConnectedHere(daemonId)) continue;
      if (record.task.status === TaskStatus.ASSIGNED) {
        await this.settle(() =>
          this.writer.mutate(record.task.id, (cur) =>
            cur.task.status === TaskStatus.ASSIGNED && cur.task.daemonId === daemonId
              ? statusChange(
                  cur,
                  TaskStatus.PENDING,
                  { reason: `daemon ${daemonId || "?"} left before starting it` },
                  { error: "" },
                )
              : undefined,
          ),
        );
        n++;
        continue;
      }
      // A daemon cannot reconnect to a gateway that was down, so the grace starts no earlier than
      // one lease after this gateway did.
      const since = Math.max(goneSince.getTime(), gatewayStartedAt + this.timings.leaseMs);
      if (now.getTime() - since < this.timings.lostGraceMs) continue;
      await this.settle(() =>
        this.writer.mutate(record.task.id, (cur) =>
          activeStates.has(cur.task.status) && cur.task.daemonId === daemonId
            ? lostThenPolicy(
                cur,
                `${runnerOf(daemonId)} vanished mid-run and did not come back; the outcome is unknown`,
              )
            : undefined,
        ),
      );
      n++;
    }
    return n;
  }

  /** CANCELING tasks whose daemon did not confirm in time follow the lost-task policy. */
  async expireCancels(now: Date): Promise<number> {
    const due = await this.writer.store.dueCancels(now, 100);
    for (const rec of due) {
      await this.settle(() =>
        this.writer.mutate(rec.task.id, (cur) => {
          if (cur.task.status !== TaskStatus.CANCELING || !cur.task.cancelDeadline) return undefined;
          if (timestampMs(cur.task.cancelDeadline) > now.getTime()) return undefined;
          const seconds = Math.round(this.timings.cancelGraceMs / 1000);
          return lostThenPolicy(
            cur,
            `${runnerOf(cur.task.daemonId)} did not confirm the cancel within ${seconds}s; the process may still be running`,
          );
        }),
      );
    }
    return due.length;
  }

  /** Runs one task's sweep step; a task that moved on meanwhile is skipped, not an error. */
  private async settle(step: () => Promise<unknown>): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (err) {
      if (err instanceof DomainError) return false;
      throw err;
    }
  }

  /**
   * Applies a daemon's report to a task it owns. `alreadyDone` recognises a repeat of a report that
   * was applied (accepted without change).
   */
  private async owned(
    taskId: string,
    daemonId: string,
    decide: (rec: TaskRecord) => Decision,
    alreadyDone?: (rec: TaskRecord) => boolean,
    alsoAllowed?: (rec: TaskRecord) => boolean,
  ): Promise<void> {
    await this.writer.mutate(taskId, (rec) => {
      if (alreadyDone?.(rec)) return undefined;
      if (alsoAllowed?.(rec)) return decide(rec);
      if (rec.task.daemonId !== daemonId || !activeStates.has(rec.task.status)) {
        throw new FailedPreconditionError(
          `task ${taskId} is ${statusName(rec.task.status)}${rec.task.daemonId ? ` on daemon ${rec.task.daemonId}` : ""}, not running on ${daemonId}`,
          { task_id: taskId, status: statusName(rec.task.status) },
        );
      }
      return decide(rec);
    });
  }
}

/** Whether a task has ended and its last attempt ran on `daemonId`. */
function lastRanOn(daemonId: string): (rec: TaskRecord) => boolean {
  return (rec) =>
    terminalStates.has(rec.task.status) &&
    rec.task.attempts[rec.task.attempts.length - 1]?.daemonId === daemonId;
}

/** Who runs a task, for messages: its daemon, or the Spage core reporting it on its own. */
function runnerOf(daemonId: string): string {
  return daemonId ? `daemon ${daemonId}` : "the Spage core running it";
}

/**
 * LOST, then what the task's policy says: back to PENDING under "requeue" while attempts remain,
 * CANCELED for a task that was being canceled (canceled work is never rerun), FAILED otherwise.
 */
export function lostThenPolicy(rec: TaskRecord, reason: string): Decision {
  const t = rec.task;
  const wasCanceling = t.status === TaskStatus.CANCELING;
  let next: TaskStatus;
  let why: string;
  if (wasCanceling) {
    next = t.onLost === "requeue" ? TaskStatus.CANCELED : TaskStatus.FAILED;
    why = next === TaskStatus.CANCELED ? "canceled work is not rerun" : "policy fail";
  } else if (t.onLost === "requeue" && t.attempt < t.maxAttempts) {
    next = TaskStatus.PENDING;
    why = `policy requeue: attempt ${t.attempt + 1} of ${t.maxAttempts}`;
  } else {
    next = TaskStatus.FAILED;
    why = t.onLost === "requeue" ? `policy requeue: all ${t.maxAttempts} attempts used` : "policy fail";
  }
  return chainChanges(
    rec,
    { to: TaskStatus.LOST, extra: { reason, error: reason }, more: { error: reason } },
    { to: next, extra: { reason: why }, more: { error: next === TaskStatus.PENDING ? "" : reason } },
  );
}
