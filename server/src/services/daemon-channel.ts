/**
 * The gateway's side of SpageAPI.StreamEvents, the daemon channel. The first event must be
 * `daemon.hello`; then the daemon heartbeats and reports on its tasks, and the gateway sends
 * `task.assigned` and `task.cancel`. Every daemon event gets an `ack` or, when it is unknown or
 * malformed, an `error` event: the stream is never dropped for a bad event.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { FastifyBaseLogger } from "fastify";
import { type Event, EventSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { DomainError, InvalidArgumentError, UnavailableError } from "../domain/errors.js";
import { activeStates } from "../domain/task-state.js";
import { Violations } from "../domain/task-validation.js";
import { throwIfAborted } from "../events/abort-reason.js";
import { abortable } from "../events/abortable.js";
import type { EventBus } from "../events/event-bus.js";
import { approxEventBytes } from "../events/event-size.js";
import { TurnBudget } from "../events/turn-budget.js";
import { toConnectError } from "../interceptors/error-mapping.js";
import type { TaskStore } from "../store/task-store.js";
import { type DaemonRegistry, DaemonSession } from "./daemon-registry.js";
import { type DaemonTasks, lostThenPolicy } from "./daemon-tasks.js";
import { cancelEvent, type Dispatcher, parseLabels } from "./dispatcher.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import { statusChange } from "./status-change.js";
import type { TaskWriter } from "./task-writer.js";

/** Event types a daemon may send, with the data keys each requires. */
export const daemonEventTypes: Readonly<Record<string, readonly string[]>> = {
  "daemon.hello": ["daemon_id"],
  "daemon.heartbeat": [],
  "task.accepted": ["task_id"],
  "task.started": ["task_id"],
  "task.progress": ["task_id"],
  "task.output": ["task_id", "seq"],
  "task.completed": ["task_id"],
  "task.failed": ["task_id"],
  "task.canceled": ["task_id"],
  "task.rejected": ["task_id"],
};

/** What the daemon channel needs. */
export interface DaemonChannelDeps {
  readonly registry: DaemonRegistry;
  readonly daemonTasks: DaemonTasks;
  readonly dispatcher: Dispatcher;
  readonly writer: TaskWriter;
  readonly store: TaskStore;
  readonly bus: EventBus;
  readonly metrics: GatewayMetrics;
  readonly log: FastifyBaseLogger;
  readonly heartbeatMs: number;
}

const daemonIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;
/** Store a daemon's liveness at most this often (and well within its lease); its session keeps the exact time. */
const seenWriteEveryMs = 1000;
/** How long a daemon that gave a task back is not offered it again. */
const refuseForMs = 30_000;

function reply(type: string, ref: Event, data: Record<string, string>): Event {
  return create(EventSchema, {
    id: `${type}-${ref.id}`,
    type,
    data: { ref: ref.id, ...data },
    timestamp: timestampNow(),
  });
}

function errorReply(ref: Event, code: string, message: string): Event {
  return reply("error", ref, { code, message });
}

/** Serves one daemon stream until the daemon closes it, the call is aborted or the session ends. */
export async function* handleDaemonStream(
  events: AsyncIterable<Event>,
  signal: AbortSignal,
  deps: DaemonChannelDeps,
): AsyncGenerator<Event> {
  const closeGauge = deps.metrics.streamOpened("daemon_streams");
  // Replies before the hello (errors) go here; after it, through the session's queue.
  const early: Event[] = [];
  let session: DaemonSession | undefined;
  let wakeEarly: (() => void) | undefined;
  const send = (ev: Event) => {
    if (session) session.send(ev);
    else {
      early.push(ev);
      wakeEarly?.();
    }
  };
  let inboundDone = false;
  let inboundError: unknown;

  const inbound = (async () => {
    try {
      for await (const ev of abortable(events, signal)) {
        if (session?.closed) break;
        try {
          if (!session) {
            if (ev.type !== "daemon.hello") {
              send(errorReply(ev, "failed_precondition", "send daemon.hello first"));
              continue;
            }
            session = await hello(ev, deps);
            for (const e of early.splice(0)) session.send(e);
            // The sender waits on the early queue until now; from here on it reads the session's.
            wakeEarly?.();
            continue;
          }
          send(await handle(session, ev, deps));
        } catch (err) {
          if (!(err instanceof DomainError)) deps.log.error({ err, type: ev.type }, "daemon event failed");
          const ce = toConnectError(err);
          const e = errorReply(ev, err instanceof DomainError ? err.kind : "internal", ce.rawMessage);
          if (ev.data.task_id) e.data.task_id = ev.data.task_id;
          // The task's state, when the refusal is about it (e.g. a report on a run that already ended).
          if (err instanceof DomainError && err.details.status) e.data.status = err.details.status;
          e.data.of = ev.type;
          send(e);
        }
      }
    } catch (err) {
      inboundError = err;
    } finally {
      inboundDone = true;
      wakeEarly?.();
      session?.end();
    }
  })();

  // A burst of assignments or cancels (e.g. a reconnect with many tasks to re-attach) is sent a share
  // per event-loop turn, so it does not hold up every other stream's writes (see turn-budget.ts).
  const budget = new TurnBudget();
  try {
    for (;;) {
      if (session) {
        const ev = await session.next(signal);
        if (!ev) break;
        const bytes = approxEventBytes(ev);
        for (let w = budget.spend(bytes); w; w = budget.spend(bytes)) await w;
        yield ev;
        continue;
      }
      const ev = early.shift();
      if (ev) {
        const bytes = approxEventBytes(ev);
        for (let w = budget.spend(bytes); w; w = budget.spend(bytes)) await w;
        yield ev;
        continue;
      }
      if (inboundDone || signal.aborted) break;
      await new Promise<void>((r) => {
        wakeEarly = r;
      });
      wakeEarly = undefined;
    }
    await inbound;
    throwIfAborted(signal);
    if (inboundError) throw inboundError;
  } finally {
    closeGauge();
    if (session)
      await goodbye(
        session,
        deps,
        session.endReason ?? (signal.aborted ? "stream aborted" : "stream closed"),
      );
  }
}

async function hello(ev: Event, deps: DaemonChannelDeps): Promise<DaemonSession> {
  const d = ev.data;
  const v = new Violations();
  const id = d.daemon_id ?? "";
  if (!daemonIdPattern.test(id)) v.add("data.daemon_id", "must be 1 to 128 letters, digits or . _ : -");
  const capacity = d.capacity === undefined || d.capacity === "" ? 1 : Number(d.capacity);
  if (!Number.isInteger(capacity) || capacity < 0 || capacity > 1000)
    v.add("data.capacity", "must be a whole number from 0 (draining: no new tasks) to 1000");
  const labels = parseLabels(d.labels);
  if (Object.keys(labels).length > 32) v.add("data.labels", "at most 32 labels");
  v.throwIfAny();

  const session = new DaemonSession(
    id,
    (d.hostname ?? "").slice(0, 256),
    (d.version ?? "").slice(0, 64),
    capacity,
    labels,
  );
  const previous = deps.registry.add(session);
  previous?.end(new UnavailableError(`daemon ${id} connected again on another stream; this one is closed`));
  await deps.store.daemonConnected({
    id,
    hostname: session.hostname,
    version: session.version,
    capacity,
    labels,
  });
  const connected = await deps.store.appendEvents([
    {
      type: "daemon.connected",
      taskId: "",
      data: {
        daemon_id: id,
        hostname: session.hostname,
        version: session.version,
        capacity: String(capacity),
        labels: d.labels ?? "",
      },
    },
  ]);
  deps.bus.publish(connected);

  // Re-attach what the daemon still runs; settle what it no longer has; stop what is not its own.
  const running = new Set(
    (d.running ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const reattached: string[] = [];
  const resend: string[] = [];
  for (const rec of await deps.store.tasksOfDaemon(id)) {
    const taskId = rec.task.id;
    if (running.has(taskId)) {
      session.tasks.add(taskId);
      reattached.push(taskId);
      if (rec.task.status === TaskStatus.CANCELING) resend.push(taskId);
      running.delete(taskId);
      continue;
    }
    await deps.writer.mutate(taskId, (cur) => {
      if (cur.task.daemonId !== id || !activeStates.has(cur.task.status)) return undefined;
      if (cur.task.status === TaskStatus.ASSIGNED) {
        return statusChange(
          cur,
          TaskStatus.PENDING,
          { reason: `daemon ${id} reconnected without it` },
          { error: "" },
        );
      }
      return lostThenPolicy(cur, `daemon ${id} reconnected without it; the outcome is unknown`);
    });
  }
  const stop = [...running];
  // From the welcome on, the daemon takes tasks and must heartbeat.
  session.lastSeen = Date.now();
  session.ready = true;
  session.send(
    create(EventSchema, {
      id: `welcome-${ev.id}`,
      type: "daemon.welcome",
      timestamp: timestampNow(),
      data: {
        ref: ev.id,
        daemon_id: id,
        heartbeat_ms: String(deps.heartbeatMs),
        lease_ms: String(deps.daemonTasks.timings.leaseMs),
        reattached: reattached.join(","),
        cancel: stop.join(","),
      },
    }),
  );
  for (const taskId of [...resend, ...stop]) session.send(cancelEvent(taskId, "not running here"));
  deps.log.info(
    { daemon: id, capacity, reattached: reattached.length, stopped: stop.length },
    "daemon connected",
  );
  deps.dispatcher.kick();
  return session;
}

async function handle(session: DaemonSession, ev: Event, deps: DaemonChannelDeps): Promise<Event> {
  const required = daemonEventTypes[ev.type];
  if (!required) {
    return errorReply(
      ev,
      "invalid_argument",
      `unknown event type "${ev.type}"; expected one of ${Object.keys(daemonEventTypes).join(", ")}`,
    );
  }
  const missing = required.filter((k) => !ev.data[k]);
  if (missing.length > 0)
    return errorReply(ev, "invalid_argument", `${ev.type} needs data key(s): ${missing.join(", ")}`);
  await seen(session, deps);
  const d = ev.data;
  const taskId = d.task_id ?? "";
  const ack = (extra: Record<string, string> = {}) =>
    reply("ack", ev, { of: ev.type, ...(taskId ? { task_id: taskId } : {}), ...extra });
  const t = deps.daemonTasks;
  switch (ev.type) {
    case "daemon.hello":
      return errorReply(
        ev,
        "failed_precondition",
        "already introduced; open a new stream to change capacity or labels",
      );
    case "daemon.heartbeat":
    case "task.accepted":
      return ack();
    case "task.started":
      await t.started(taskId, session.id, d.pid ?? "");
      return ack();
    case "task.progress":
      await t.progress(taskId, session.id, Number(d.progress ?? "0"), (d.message ?? "").slice(0, 4096));
      return ack();
    case "task.output": {
      const seq = Number(d.seq);
      const stream = d.stream === "stderr" ? "stderr" : "stdout";
      const stored = await t.output(taskId, session.id, seq, stream, (d.line ?? "").slice(0, 64 * 1024));
      return ack({ seq: String(seq), ...(stored ? {} : { duplicate: "true" }) });
    }
    case "task.completed":
    case "task.failed": {
      const result: Record<string, string> = {};
      for (const [k, val] of Object.entries(d)) if (k.startsWith("result_")) result[k.slice(7)] = val;
      const exitCode = Number(d.exit_code ?? (ev.type === "task.completed" ? "0" : "1"));
      if (!Number.isInteger(exitCode))
        throw InvalidArgumentError.field("data.exit_code", "must be a whole number");
      await t.finished(taskId, session.id, {
        status: ev.type === "task.completed" ? TaskStatus.COMPLETED : TaskStatus.FAILED,
        exitCode,
        error: ev.type === "task.failed" ? (d.error ?? `exit code ${exitCode}`).slice(0, 4096) : "",
        result,
      });
      session.tasks.delete(taskId);
      deps.dispatcher.kick();
      return ack();
    }
    case "task.canceled":
      await t.canceled(taskId, session.id);
      session.tasks.delete(taskId);
      deps.dispatcher.kick();
      return ack();
    case "task.rejected":
      await t.rejected(taskId, session.id, (d.reason ?? "").slice(0, 1024));
      session.tasks.delete(taskId);
      // Not offered to this daemon again for a while, so a full or unwilling daemon does not spin.
      session.refused.set(taskId, Date.now() + refuseForMs);
      deps.dispatcher.kick();
      return ack();
    default:
      return errorReply(ev, "invalid_argument", `unhandled event type "${ev.type}"`);
  }
}

/** Records that the daemon is alive: exactly in its session, at most once a second in the store. */
async function seen(session: DaemonSession, deps: DaemonChannelDeps): Promise<void> {
  const now = Date.now();
  session.lastSeen = now;
  if (now - session.lastSeenStored < Math.min(seenWriteEveryMs, deps.daemonTasks.timings.leaseMs / 3)) return;
  session.lastSeenStored = now;
  await deps.store.daemonSeen(session.id);
}

/** A daemon's stream ended: it is gone from this gateway; its unstarted tasks go back to the queue. */
async function goodbye(session: DaemonSession, deps: DaemonChannelDeps, reason: string): Promise<void> {
  session.end();
  if (!deps.registry.remove(session)) return; // replaced by a newer stream of the same daemon
  try {
    await deps.store.daemonDisconnected(session.id);
    deps.bus.publish(
      await deps.store.appendEvents([
        { type: "daemon.left", taskId: "", data: { daemon_id: session.id, reason } },
      ]),
    );
    await deps.daemonTasks.requeueAssigned(session.id, `daemon ${session.id} left before starting it`);
  } catch (err) {
    // The store may be closing (shutdown); the lease sweep settles these tasks later.
    deps.log.warn({ err, daemon: session.id }, "daemon disconnect bookkeeping failed");
  }
  deps.log.info({ daemon: session.id, reason }, "daemon disconnected");
  deps.dispatcher.kick();
}
