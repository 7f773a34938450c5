/**
 * Moves WAITING tasks on when their dependencies end (domain/task-graph.ts decides how): every
 * committed `task.status` event into a final state, from this gateway or (shared store) another,
 * resolves the dependents of its task; a dependent that ends in turn resolves its own, so a failure
 * travels down the whole graph. Each change is a conditional update from WAITING, so gateways
 * resolving the same task at once change it once. What a crash between a dependency's end and
 * this reaction leaves waiting, the sweep finds (`store.settledWaiting`).
 */
import type { FastifyBaseLogger } from "fastify";
import type { Event } from "../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { dependencyOutcome } from "../domain/task-graph.js";
import { parseStatusName, terminalStates } from "../domain/task-state.js";
import type { TaskRecord } from "../store/task-store.js";
import { statusChange } from "./status-change.js";
import type { TaskWriter } from "./task-writer.js";

/** Most settled WAITING tasks one sweep resolves. */
const sweepBatch = 500;

/** Resolves waiting tasks. */
export class DependencyResolver {
  private unlisten: (() => void) | undefined;

  constructor(
    private readonly writer: TaskWriter,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Starts reacting to ended tasks. */
  start(): void {
    this.unlisten = this.writer.bus.listen((events) => this.onEvents(events));
  }

  stop(): void {
    this.unlisten?.();
  }

  private onEvents(events: readonly Event[]): void {
    for (const ev of events) {
      if (ev.type !== "task.status") continue;
      const to = parseStatusName(ev.data.to ?? "");
      if (to === undefined || !terminalStates.has(to)) continue;
      void this.resolveDependentsOf(ev.taskId).catch((err: unknown) =>
        this.log.error({ err, task: ev.taskId }, "dependents of an ended task not resolved"),
      );
    }
  }

  /** Resolves the dependents of task `id` (which has ended). */
  async resolveDependentsOf(id: string): Promise<void> {
    const { record } = await this.writer.store.getTask(id);
    if (!record || record.task.dependents.length === 0) return;
    await Promise.all(record.task.dependents.map((d) => this.resolve(d)));
  }

  /**
   * Decides task `id` if it is WAITING: queued once every dependency COMPLETED, ended when one
   * ended otherwise. Returns the record after the decision (undefined when it is missing).
   */
  async resolve(id: string): Promise<TaskRecord | undefined> {
    const { record } = await this.writer.store.getTask(id);
    if (!record || record.task.status !== TaskStatus.WAITING) return record;
    return this.decide(record);
  }

  private async decide(rec: TaskRecord): Promise<TaskRecord> {
    // Ended states never change, so states read before the write still hold at it; one that ends
    // after the read triggers its own resolution.
    const states = await this.writer.store.taskStates(rec.task.dependsOn);
    const byId = new Map(states.map((s) => [s.id, s.status]));
    const outcome = dependencyOutcome(rec.task.dependsOn, byId);
    if (outcome.kind === "wait") return rec;
    const { record } = await this.writer.mutate(rec.task.id, (cur) => {
      if (cur.task.status !== TaskStatus.WAITING) return undefined;
      if (outcome.kind === "ready")
        return statusChange(cur, TaskStatus.PENDING, { reason: "dependencies completed" });
      return statusChange(
        cur,
        outcome.to,
        {
          reason: "dependency",
          error: outcome.error,
          dependency: outcome.cause,
          dependency_status: outcome.causeStatus,
        },
        { error: outcome.error },
      );
    });
    return record;
  }

  /** Resolves WAITING tasks whose dependencies all ended (what a crash left); returns how many. */
  async sweep(): Promise<number> {
    const settled = await this.writer.store.settledWaiting(sweepBatch);
    await Promise.all(settled.map((rec) => this.decide(rec)));
    return settled.length;
  }
}
