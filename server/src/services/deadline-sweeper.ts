/**
 * Periodically ends tasks whose run-time limit has passed (TIMED_OUT). Safe with several gateways on
 * one store: each change is a conditional update, so a task times out once.
 */
import type { FastifyBaseLogger } from "fastify";
import type { TaskService } from "./task-service.js";

/** A running sweeper. */
export interface DeadlineSweeper {
  stop(): void;
}

/** Starts checking deadlines every `intervalMs`. */
export function startDeadlineSweeper(
  tasks: TaskService,
  log: FastifyBaseLogger,
  intervalMs: number,
): DeadlineSweeper {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    tasks
      .expireDeadlines()
      .then((n) => {
        if (n > 0) log.info({ timedOut: n }, "tasks timed out");
      })
      .catch((err: unknown) => log.error({ err }, "deadline sweep failed"))
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
