/**
 * One task's process on the agent's machine: a shell running the task's command in its own process
 * group (so a cancel reaches every child), with stdout and stderr read line by line.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** How a task's process ended. */
export interface ProcessExit {
  /** Exit code; 128 + signal number when killed by a signal. */
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | null;
  /** Whether it ended because the agent stopped it. */
  readonly stopped: boolean;
}

/** A running task process. */
export interface TaskProcess {
  readonly pid: number;
  /** Resolves once the process exited and its output was read to the end. */
  readonly exited: Promise<ProcessExit>;
  /** SIGTERM to the process group, then SIGKILL after `graceMs` if it is still there. */
  stop(graceMs: number): void;
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Starts `command` with `sh -c`; `onLine` receives every output line. */
export function startTaskProcess(
  command: string,
  env: NodeJS.ProcessEnv,
  onLine: (stream: "stdout" | "stderr", line: string) => void,
): TaskProcess {
  const child = spawn("/bin/sh", ["-c", command], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let stopped = false;
  let killTimer: NodeJS.Timeout | undefined;
  const readers = (["stdout", "stderr"] as const).map((name) => {
    const stream = child[name];
    if (!stream) return Promise.resolve();
    const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on("line", (line) => onLine(name, line));
    return new Promise<void>((resolve) => rl.once("close", () => resolve()));
  });
  const exited = new Promise<ProcessExit>((resolve) => {
    let spawnError: Error | undefined;
    child.once("error", (err) => {
      spawnError = err;
    });
    child.once("close", async (code, signal) => {
      if (killTimer) clearTimeout(killTimer);
      await Promise.all(readers);
      if (spawnError) onLine("stderr", `cannot start the task's command: ${spawnError.message}`);
      const exitCode = code ?? (signal ? 128 + (signalNumbers[signal] ?? 0) : 1);
      resolve({ exitCode, signal, stopped });
    });
  });
  const signalGroup = (sig: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // Already gone.
    }
  };
  return {
    pid: child.pid ?? -1,
    exited,
    stop(graceMs) {
      if (stopped) return;
      stopped = true;
      signalGroup("SIGTERM");
      killTimer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
      killTimer.unref();
    },
  };
}
