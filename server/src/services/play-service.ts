/**
 * Plays: the play era of SpageExecution on the gateway's tasks. A play is a task of type "playbook"
 * (era "play"; the play id is the task id) whose steps are the play's Ansible tasks. ExecutePlay,
 * RegisterPlay, CancelPlay and GetPlayStatus go through TaskService like their task-era twins; a
 * play's own updates start and end it, its step updates fill its step table.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Event,
  type Task,
  TaskPriority,
  TaskStatus,
  type TaskStep,
} from "../../../gen/spage/core/common_pb.js";
import {
  type PlayProgressUpdate,
  PlayStatus,
  type SpagePlay,
  SpagePlaySchema,
  SpageTaskSchema,
  type TaskProgressUpdate,
} from "../../../gen/spage/core/play_pb.js";
import { FailedPreconditionError, NotFoundError } from "../domain/errors.js";
import {
  applyStepUpdate,
  clipBytes,
  failedStepsSummary,
  finalTaskStatusOf,
  isFinalStep,
  maxEventOutput,
  maxSteps,
  playStatusOf,
  stepProgress,
  stepRecap,
  stepStates,
} from "../domain/play-steps.js";
import { type Actor, checkOwnerAccess } from "../domain/task-owner.js";
import { statusName, terminalStates } from "../domain/task-state.js";
import { checkReason, checkStringMap, checkTaskId, clip, Violations } from "../domain/task-validation.js";
import type { NewEvent, TaskPatch, TaskRecord } from "../store/task-store.js";
import type { AuditInWrite } from "./audit-log.js";
import { chainChanges, statusChange } from "./status-change.js";
import { nonEmpty, playbookPayload, type TaskService } from "./task-service.js";
import type { Decision, TaskWriter } from "./task-writer.js";

/** The fields of ExecutePlay and RegisterPlay. */
export interface PlayInput {
  readonly playId: string;
  readonly playbook: string;
  readonly inventory: string;
  readonly variables: Readonly<Record<string, string>>;
  readonly executor: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly bundleId: string;
  readonly bundleRootPath: string;
}

/** What recording an update did: the stored events and the task after it. */
export interface Recorded {
  readonly events: Event[];
  readonly record: TaskRecord;
  /** Why the update changed nothing it could have (the step table is full); "" otherwise. */
  readonly note: string;
}

/** The play operations. */
export class PlayService {
  constructor(
    private readonly tasks: TaskService,
    private readonly writer: TaskWriter,
  ) {}

  /** Creates a play and queues it for a daemon; idempotent on play_id. */
  async execute(input: PlayInput, audit?: AuditInWrite, actor?: Actor): Promise<{ task: Task }> {
    const v = new Violations();
    if (input.playbook.trim() === "")
      v.add("playbook", "is required (path of the playbook or spage://bundle/...)");
    checkPlayFields(v, input);
    v.throwIfAny();
    return this.tasks.submit(
      {
        taskId: input.playId,
        type: "playbook",
        priority: TaskPriority.NORMAL,
        payload: playbookPayload({ ...input, engine: "" }),
        metadata: playMetadata(input),
        era: "play",
      },
      audit,
      actor,
    );
  }

  /** Registers a play its core runs itself; a later registration only fills what is empty. */
  async register(input: PlayInput, actor?: Actor): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "play_id", input.playId, true);
    checkPlayFields(v, input);
    v.throwIfAny();
    return this.tasks.register(
      {
        taskId: input.playId,
        playbook: input.playbook,
        inventory: input.inventory,
        variables: input.variables,
        engine: "",
        metadata: playMetadata(input),
        era: "play",
      },
      actor,
    );
  }

  /** Cancels a play (its task). */
  async cancel(playId: string, reason: string): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "play_id", playId, true);
    checkReason(v, "reason", reason);
    v.throwIfAny();
    return this.tasks.cancel(playId, reason);
  }

  /** A play with its Ansible tasks. */
  async get(playId: string, hostname: (daemonId: string) => string, actor?: Actor): Promise<SpagePlay> {
    const v = new Violations();
    checkTaskId(v, "play_id", playId, true);
    v.throwIfAny();
    const { task } = await this.tasks.get(playId, actor);
    return toSpagePlay(
      task,
      hostname(task.daemonId || task.attempts[task.attempts.length - 1]?.daemonId || ""),
    );
  }

  /**
   * Records a play's own update: PENDING or RUNNING start it (a play the gateway does not know is
   * created first, as a core's own run), COMPLETED, FAILED and CANCELED end it. An update of a play
   * that has ended is stored as an event and changes nothing.
   */
  async recordPlay(u: PlayProgressUpdate, actor?: Actor): Promise<Recorded> {
    const v = new Violations();
    checkTaskId(v, "play_id", u.playId, true);
    if (u.status === PlayStatus.UNSPECIFIED || PlayStatus[u.status] === undefined) {
      v.add("status", "must be PENDING, RUNNING, COMPLETED, FAILED or CANCELED");
    }
    v.throwIfAny();
    const end = finalTaskStatusOf(u.status);
    const event: NewEvent = {
      type: "play.progress",
      taskId: u.playId,
      data: nonEmpty({
        status: PlayStatus[u.status] ?? String(u.status),
        output: clip(u.output, 4096),
        error: clip(u.error, 4096),
      }),
    };
    const res = await this.mutatePlay(u.playId, actor, (rec) => {
      checkOwnerAccess(actor, rec.task, "report progress on");
      if (terminalStates.has(rec.task.status)) return { patch: {}, events: [event] };
      // The play's own update comes first in the log, then the state changes it caused.
      const change = end === undefined ? begin(rec) : endPlay(rec, end, u.error);
      return merge({ patch: {}, events: [event] }, change ?? { patch: {}, events: [] });
    });
    return { ...res, note: "" };
  }

  /**
   * Records one step update of a play, idempotently and in any order (domain/play-steps.ts). A
   * play the gateway does not know is created first. A late step update of a play that has ended
   * still completes its step table; it never changes the play's state.
   */
  async recordStep(u: TaskProgressUpdate, actor?: Actor): Promise<Recorded> {
    const v = new Violations();
    checkTaskId(v, "play_id", u.playId, true);
    const result = u.result;
    const number = u.taskId || result?.taskId || 0;
    if (number < 0) v.add("task_id", "must not be negative");
    if (!result) v.add("result", "is required (the Ansible task's status)");
    else if (!stepStates.has(result.status)) {
      v.add("result.status", "must be PENDING, RUNNING, COMPLETED, FAILED, SKIPPED or CANCELED");
    }
    v.throwIfAny();
    if (!result) throw new Error("unreachable");
    const update = {
      number,
      name: clip(result.taskName || u.taskName, 512),
      status: result.status,
      output: result.output,
      error: result.error,
      metrics: result.metrics,
      startedAt: result.startedAt,
      completedAt: result.completedAt,
    };
    const event: NewEvent = {
      type: "task.step",
      taskId: u.playId,
      data: nonEmpty({
        number: String(number),
        name: update.name,
        status: statusName(update.status),
        output: clipBytes(update.output, maxEventOutput),
        error: clip(update.error, 4096),
        duration: result.metrics?.duration ? String(result.metrics.duration) : "",
      }),
    };
    let note = "";
    const res = await this.mutatePlay(u.playId, actor, (rec) => {
      checkOwnerAccess(actor, rec.task, "report progress on");
      const applied = applyStepUpdate(rec.task.steps, update);
      note = applied.full
        ? `play ${u.playId} has ${maxSteps} steps already; this update was stored as an event only`
        : "";
      const ended = terminalStates.has(rec.task.status);
      const patch: { -readonly [K in keyof TaskPatch]: TaskPatch[K] } = {};
      if (applied.changed) {
        patch.steps = applied.steps;
        if (!ended) patch.progress = stepProgress(applied.steps);
        else patch.result = { ...rec.task.result, ...stepRecap(applied.steps) };
      }
      if (ended) return { patch, events: [event] };
      const now = { ...rec, task: { ...rec.task, steps: applied.steps } };
      return merge(begin(now), { patch, events: [event] });
    });
    return { ...res, note };
  }

  /** Ends a play explicitly; repeating the final state it already has succeeds. */
  async complete(input: { playId: string; status: PlayStatus; error: string }, actor?: Actor): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "play_id", input.playId, true);
    const end = finalTaskStatusOf(input.status);
    if (end === undefined) v.add("status", "must be COMPLETED, FAILED or CANCELED");
    v.throwIfAny();
    if (end === undefined) throw new Error("unreachable");
    const { record } = await this.writer.mutate(input.playId, (rec) => {
      checkOwnerAccess(actor, rec.task, "complete");
      const from = rec.task.status;
      if (from === end) return undefined;
      if (terminalStates.has(from)) {
        throw new FailedPreconditionError(
          `play ${input.playId} already ended as ${statusName(from)}; cannot complete it as ${statusName(end)}`,
          { play_id: input.playId, status: statusName(from) },
        );
      }
      return endPlay(rec, end, input.error);
    });
    return record.task;
  }

  /**
   * Applies `decide` to a play's task; a play the gateway first hears of from its updates (a core's
   * own run) is created first, then decided on.
   */
  private async mutatePlay(
    playId: string,
    actor: Actor | undefined,
    decide: (rec: TaskRecord) => Decision,
  ): Promise<{ record: TaskRecord; events: Event[] }> {
    try {
      return await this.writer.mutate(playId, decide);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    await this.tasks.registerNew(
      { taskId: playId, playbook: "", inventory: "", variables: {}, engine: "", metadata: {}, era: "play" },
      actor,
    );
    return this.writer.mutate(playId, decide);
  }
}

/** The change that makes a waiting play RUNNING; undefined when it runs already. */
function begin(rec: TaskRecord): Decision {
  const s = rec.task.status;
  if (s !== TaskStatus.PENDING && s !== TaskStatus.ASSIGNED) return undefined;
  return statusChange(rec, TaskStatus.RUNNING, {});
}

/**
 * The change that ends a play as `end` (a waiting one passes through RUNNING in the same write),
 * with its error: for FAILED the reported one, then each failed step; for CANCELED the reported
 * one or the cancel reason.
 */
function endPlay(rec: TaskRecord, end: TaskStatus, reported: string): NonNullable<Decision> {
  const steps = rec.task.steps;
  let error = "";
  if (end === TaskStatus.FAILED) {
    error = [reported, failedStepsSummary(steps)].filter((x) => x !== "").join("; ") || "the play failed";
  } else if (end === TaskStatus.CANCELED) {
    error = reported || rec.task.error || "canceled";
  }
  const extra: Record<string, string> = error ? { error } : {};
  const last = { to: end, extra, more: endPatch(end, steps, error) };
  const s = rec.task.status;
  if (s === TaskStatus.PENDING || s === TaskStatus.ASSIGNED) {
    return chainChanges(rec, { to: TaskStatus.RUNNING }, last);
  }
  return statusChange(rec, last.to, last.extra, last.more);
}

/** What an explicit end sets besides the state: the error, the step counts, and progress. */
function endPatch(end: TaskStatus, steps: readonly TaskStep[], error: string): TaskPatch {
  // COMPLETED is 100 (statusChange); any other end shows how far the play got.
  if (end === TaskStatus.COMPLETED) return { error, result: stepRecap(steps) };
  const done = steps.filter((s) => isFinalStep(s.status)).length;
  const progress = steps.length === 0 ? 0 : Math.round((1000 * done) / steps.length) / 10;
  return { error, result: stepRecap(steps), ...(progress > 0 ? { progress } : {}) };
}

/** Two decisions in one write: `first`'s patch and events, then `second`'s. */
function merge(first: Decision, second: NonNullable<Decision>): NonNullable<Decision> {
  if (!first) return second;
  return { patch: { ...first.patch, ...second.patch }, events: [...first.events, ...second.events] };
}

function checkPlayFields(v: Violations, input: PlayInput): void {
  checkTaskId(v, "play_id", input.playId, false);
  checkStringMap(v, "variables", input.variables);
  checkStringMap(v, "metadata", input.metadata);
  for (const [field, value] of [
    ["executor", input.executor],
    ["bundle_id", input.bundleId],
    ["bundle_root_path", input.bundleRootPath],
  ] as const) {
    if (value.length > 1024) v.add(field, `must be at most 1024 characters (got ${value.length})`);
  }
}

/** A play's metadata: its labels, with the executor and bundle when given. */
function playMetadata(input: PlayInput): Record<string, string> {
  return nonEmpty({
    ...input.metadata,
    executor: input.executor,
    bundle_id: input.bundleId,
    bundle_root_path: input.bundleRootPath,
  });
}

/** A task seen through the play era. */
export function toSpagePlay(task: Task, hostname: string): SpagePlay {
  let variables: Record<string, string> = {};
  try {
    const parsed = JSON.parse(task.payload.variables ?? "{}") as Record<string, unknown>;
    variables = Object.fromEntries(Object.entries(parsed).map(([k, val]) => [k, String(val)]));
  } catch {
    variables = {};
  }
  return create(SpagePlaySchema, {
    id: task.id,
    playbook: task.payload.playbook ?? "",
    inventory: task.payload.inventory ?? "",
    hostname: hostname || task.metadata.hostname || "",
    variables,
    status: playStatusOf(task.status),
    tasks: task.steps.map((s) =>
      create(SpageTaskSchema, {
        id: s.number,
        name: s.name,
        status: s.status,
        createdAt: s.startedAt ?? s.updatedAt,
        updatedAt: s.updatedAt,
        startedAt: s.startedAt,
        completedAt: s.completedAt,
        output: s.output,
        error: s.error,
      }),
    ),
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    startedAt: task.startedAt,
    completedAt: task.completedAt,
    error: task.error,
  });
}
