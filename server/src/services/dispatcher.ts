/**
 * Hands PENDING tasks to connected daemons with free capacity: highest priority first, first in,
 * first out within a priority, only to daemons carrying every label a task asks for (payload
 * `target_labels`, "k=v,k=v"), preferring the daemon with most free slots. A task is claimed with a
 * conditional update, so it is never handed to two daemons, even by two gateways.
 *
 * It runs when something may have become dispatchable (a submit, a task back in the queue, a daemon
 * connecting or freeing a slot) and on a slow timer for changes made by other gateways. It also
 * forwards cancellations and timeouts to the daemon running the task.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampNow } from "@bufbuild/protobuf/wkt";
import type { FastifyBaseLogger } from "fastify";
import { type Event, EventSchema } from "../../../gen/spage/core/common_pb.js";
import type { EventBus } from "../events/event-bus.js";
import type { TaskRecord, TaskStore } from "../store/task-store.js";
import { isTraceparent } from "../tracing/trace-context.js";
import type { DaemonRegistry, DaemonSession } from "./daemon-registry.js";
import type { DaemonTasks } from "./daemon-tasks.js";

/** Parses "k=v,k=v" into a label map (empty entries ignored). */
export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? "").split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** The `task.assigned` event a daemon receives for a claimed task. */
export function assignedEvent(rec: TaskRecord): Event {
  const t = rec.task;
  return create(EventSchema, {
    id: `assign-${t.id}-${t.attempt}`,
    type: "task.assigned",
    taskId: t.id,
    timestamp: timestampNow(),
    data: {
      task_id: t.id,
      type: t.type,
      attempt: String(t.attempt),
      timeout_seconds: String(t.timeoutSeconds),
      payload: JSON.stringify(t.payload),
      playbook: t.payload.playbook ?? "",
      inventory: t.payload.inventory ?? "",
      variables: t.payload.variables ?? "{}",
      // Which SpageExecution methods the task's core reports through: "play" for a play.
      ...(t.era ? { era: t.era } : {}),
      // Hosts the run is limited to (a retry of the failed hosts), as ansible-playbook --limit.
      ...(t.limitHosts.length > 0 ? { limit: t.limitHosts.join(",") } : {}),
      // The trace the run belongs to (W3C Trace Context): the daemon hands it to the process as
      // TRACEPARENT. Set by a tracing gateway at submit, or by the client in the task's metadata.
      ...(isTraceparent(t.metadata.traceparent) ? { traceparent: t.metadata.traceparent } : {}),
    },
  });
}

/** The `task.cancel` event sent to the daemon running a task. */
export function cancelEvent(taskId: string, reason: string, deadline?: Date): Event {
  return create(EventSchema, {
    id: `cancel-${taskId}`,
    type: "task.cancel",
    taskId,
    timestamp: timestampNow(),
    data: { task_id: taskId, reason, ...(deadline ? { deadline: deadline.toISOString() } : {}) },
  });
}

/** Most queued tasks one dispatch round looks at. */
const maxWindow = 1000;

/** Whether daemon `s` can take `rec` now (`wanted`: the task's target labels). */
function canTake(s: DaemonSession, rec: TaskRecord, wanted: Readonly<Record<string, string>>): boolean {
  return !s.closed && s.free > 0 && s.matches(wanted) && !s.refuses(rec.task.id);
}

/** Whether any of `sessions` could take `rec` now. */
function fits(rec: TaskRecord, sessions: readonly DaemonSession[]): boolean {
  const wanted = parseLabels(rec.task.payload.target_labels);
  return sessions.some((s) => canTake(s, rec, wanted));
}

/** Dispatches tasks to this gateway's daemons. */
export class Dispatcher {
  private scheduled = false;
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => void) | undefined;

  constructor(
    private readonly registry: DaemonRegistry,
    private readonly store: TaskStore,
    private readonly daemonTasks: DaemonTasks,
    private readonly bus: EventBus,
    private readonly log: FastifyBaseLogger,
    private readonly pollMs: number,
  ) {}

  /** Starts reacting to events and polling. */
  start(): void {
    this.unlisten = this.bus.listen((events) => this.onEvents(events));
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
  }

  /** Stops dispatching. */
  stop(): void {
    this.unlisten?.();
    if (this.timer) clearInterval(this.timer);
  }

  /** Asks for a dispatch round soon (coalesced). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private onEvents(events: readonly Event[]): void {
    let kick = false;
    for (const ev of events) {
      if (ev.type === "task.submitted") {
        kick = true;
        continue;
      }
      if (ev.type !== "task.status") continue;
      const to = ev.data.to;
      const daemonId = ev.data.daemon_id;
      const session = daemonId ? this.registry.get(daemonId) : undefined;
      if (to === "PENDING") kick = true;
      if (!session) continue;
      if (to === "CANCELING") {
        void this.sendCancel(session, ev.taskId, ev.data.reason ?? "canceled");
      } else if (to !== "ASSIGNED" && to !== "RUNNING") {
        // The task left this daemon (ended, requeued, lost): free its slot; a task that ended while
        // the daemon still runs it (timed out) must be stopped there.
        if (session.tasks.delete(ev.taskId)) kick = true;
        if (to === "TIMED_OUT") session.send(cancelEvent(ev.taskId, ev.data.reason ?? "timed out"));
      }
    }
    if (kick) this.kick();
  }

  private async sendCancel(session: DaemonSession, taskId: string, reason: string): Promise<void> {
    const { record } = await this.store.getTask(taskId);
    const deadline = record?.task.cancelDeadline ? timestampDate(record.task.cancelDeadline) : undefined;
    session.send(cancelEvent(taskId, reason, deadline));
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      do {
        this.again = false;
        await this.round();
      } while (this.again);
    } catch (err) {
      this.log.error({ err }, "dispatch round failed");
    } finally {
      this.running = false;
    }
  }

  /** One round: claims as many queued tasks as free daemon slots allow. */
  private async round(): Promise<void> {
    const sessions = this.registry.all().filter((s) => !s.closed && s.free > 0);
    const free = sessions.reduce((n, s) => n + s.free, 0);
    if (free === 0) return;
    // A few candidates per free slot; when none of them fits a free daemon (tasks for labels no
    // daemon here has sit in front), a wider window, so such a backlog does not starve the rest.
    const small = Math.min(maxWindow, free * 4 + 16);
    let queue = await this.store.pendingQueue(small);
    if (queue.length === small && small < maxWindow && !queue.some((rec) => fits(rec, sessions))) {
      queue = await this.store.pendingQueue(maxWindow);
    }
    const claims: Promise<void>[] = [];
    for (const rec of queue) {
      const wanted = parseLabels(rec.task.payload.target_labels);
      let best: DaemonSession | undefined;
      for (const s of sessions) {
        if (!canTake(s, rec, wanted)) continue;
        if (!best || s.free > best.free) best = s;
      }
      if (!best) continue;
      const target = best;
      target.reserved++;
      claims.push(
        this.daemonTasks
          .claim(rec, target.id)
          .then((claimed) => {
            if (!claimed) return;
            if (target.closed) {
              // The daemon left while the claim was in flight; its assigned tasks are requeued
              // by the disconnect handling, which may already have run.
              void this.daemonTasks.requeueAssigned(target.id, `daemon ${target.id} left`);
              return;
            }
            target.tasks.add(claimed.task.id);
            target.send(assignedEvent(claimed));
          })
          .finally(() => {
            target.reserved--;
          }),
      );
      if (sessions.every((s) => s.free <= 0)) break;
    }
    await Promise.all(claims);
    if (claims.length > 0 && queue.length > claims.length) this.again = true;
  }
}
