/**
 * Periodic upkeep of tasks and daemons: timeouts (TIMED_OUT), unconfirmed cancels, tasks of daemons
 * that are gone (requeue, or LOST and the lost-task policy), core-only runs whose core is gone,
 * waiting tasks whose dependencies all ended (a crash left them undecided), and
 * local daemon streams whose lease ran out. With several gateways on one store, the task stages run
 * on the one holding the sweep lease (`claim`), and every change is a conditional update anyway;
 * each gateway still watches its own daemon streams.
 */
import type { FastifyBaseLogger } from "fastify";
import { UnavailableError } from "../domain/errors.js";
import type { CoreRuns } from "./core-runs.js";
import type { DaemonRegistry } from "./daemon-registry.js";
import type { DaemonTasks } from "./daemon-tasks.js";
import type { DependencyResolver } from "./dependencies.js";
import type { TaskService } from "./task-service.js";

/** A running sweeper. */
export interface TaskSweeper {
  /** Runs one sweep now (tests and shutdown use it); resolves when done. */
  sweep(): Promise<void>;
  stop(): void;
}

/** Starts sweeping every `intervalMs`. */
export function startTaskSweeper(
  tasks: TaskService,
  daemonTasks: DaemonTasks,
  registry: DaemonRegistry,
  coreRuns: CoreRuns,
  dependencies: DependencyResolver,
  log: FastifyBaseLogger,
  intervalMs: number,
  claim?: () => Promise<boolean>,
): TaskSweeper {
  let running: Promise<void> | undefined;
  const once = async () => {
    const now = new Date();
    for (const session of registry.all()) {
      if (session.closed || !session.ready) continue;
      if (now.getTime() - session.lastSeen > daemonTasks.timings.leaseMs) {
        log.warn({ daemon: session.id }, "daemon missed its lease; closing its stream");
        session.end(new UnavailableError(`no heartbeat from daemon ${session.id} within its lease`));
      }
    }
    if (claim && !(await claim())) return;
    // Each stage on its own: a failure in one must not hold up the others.
    const stage = async (name: string, run: () => Promise<number>) => {
      try {
        return await run();
      } catch (err) {
        log.error({ err, stage: name }, "task sweep stage failed");
        return 0;
      }
    };
    const timedOut = await stage("timeouts", () => tasks.expireDeadlines(now));
    const cancels = await stage("cancels", () => daemonTasks.expireCancels(now));
    const orphans = await stage("orphans", () => daemonTasks.handleOrphans(now, (id) => registry.has(id)));
    const coreRunsEnded = await stage("core runs", () => coreRuns.endDisconnected(now));
    const waiting = await stage("dependencies", () => dependencies.sweep());
    if (timedOut + cancels + orphans + coreRunsEnded + waiting > 0) {
      log.info({ timedOut, cancels, orphans, coreRunsEnded, waiting }, "tasks swept");
    }
  };
  const sweep = () => {
    running ??= once()
      .catch((err: unknown) => log.error({ err }, "task sweep failed"))
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => void sweep(), intervalMs);
  timer.unref();
  return { sweep, stop: () => clearInterval(timer) };
}
