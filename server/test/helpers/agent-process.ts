/**
 * Runs the reference daemon as a child process, the way an operator does:
 * `node bin/spage-gateway.js agent --endpoint ... --capacity N --command ... --daemon-id ...`, and
 * reads the JSON log lines it writes to stderr.
 *
 * The agent starts every task's command in its own process group, so a task process outlives an
 * agent killed with SIGKILL. The helper remembers every task pid the agent logged (and any the test
 * adds with `trackPid`) and `cleanup()` kills those process groups too, so no `sleep` is left behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const cli = fileURLToPath(new URL("../../../bin/spage-gateway.js", import.meta.url));

/** How to start an agent. */
export interface AgentProcessOptions {
  /** Gateway URL, e.g. http://127.0.0.1:1234. */
  readonly endpoint: string;
  readonly daemonId: string;
  readonly capacity?: number;
  /** The agent's --command template. */
  readonly command: string;
  /** --kill-grace-ms (default: the agent's own, 10 s). */
  readonly killGraceMs?: number;
  readonly labels?: string;
  /** More `agent` flags, e.g. `["--core-era", "play"]`. */
  readonly extraArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

/** One JSON log line of the agent. */
export type AgentLog = Record<string, unknown>;

/** An agent child process. */
export interface AgentProcess {
  readonly daemonId: string;
  readonly child: ChildProcess;
  readonly logs: AgentLog[];
  /** Resolves with the exit code (128 + signal number after a signal). */
  readonly exited: Promise<number | null>;
  /** Waits until a log line matches, or fails after `timeoutMs` listing the agent's stderr. */
  waitForLog(match: (line: AgentLog) => boolean, timeoutMs?: number): Promise<AgentLog>;
  /** Log lines matching `match`, so far. */
  count(match: (line: AgentLog) => boolean): number;
  /** Pids of task processes the agent logged ("task started"), plus tracked ones. */
  taskPids(): number[];
  /** Remembers a task process (group leader) pid to kill in `cleanup()`. */
  trackPid(pid: number): void;
  /** Sends `signal` to the agent and waits (bounded) for it to exit. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** Kills the agent (SIGKILL if still running) and every task process group it started. */
  cleanup(): Promise<void>;
  stderr(): string;
}

/** Kills a process group with SIGKILL; ignores groups that are gone. */
export function killGroup(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Whether a process with this pid exists (a zombie counts). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Starts an agent. */
export function startAgentProcess(opts: AgentProcessOptions): AgentProcess {
  const args = [
    cli,
    "agent",
    "--endpoint",
    opts.endpoint,
    "--daemon-id",
    opts.daemonId,
    "--capacity",
    String(opts.capacity ?? 1),
    "--command",
    opts.command,
  ];
  if (opts.killGraceMs !== undefined) args.push("--kill-grace-ms", String(opts.killGraceMs));
  if (opts.labels !== undefined) args.push("--labels", opts.labels);
  args.push(...(opts.extraArgs ?? []));
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: AgentLog[] = [];
  const waiters = new Set<() => void>();
  const tracked = new Set<number>();
  let stderr = "";
  let partial = "";
  child.stdout?.resume();
  child.stderr?.on("data", (d: Buffer) => {
    const text = d.toString();
    stderr += text;
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      let parsed: AgentLog;
      try {
        parsed = JSON.parse(line) as AgentLog;
      } catch {
        parsed = { raw: line };
      }
      logs.push(parsed);
      if (parsed.msg === "task started" && typeof parsed.pid === "number") tracked.add(parsed.pid);
    }
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code, signal) =>
      resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null)),
    ),
  );
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of [...waiters]) w();
  });

  const waitForLog = (match: (line: AgentLog) => boolean, timeoutMs = 30_000) =>
    new Promise<AgentLog>((resolve, reject) => {
      const check = () => {
        const hit = logs.find(match);
        if (hit) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        } else if (done) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`agent ${opts.daemonId} exited before the log line; stderr:\n${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `agent ${opts.daemonId}: no matching log line within ${timeoutMs} ms; stderr:\n${stderr}`,
          ),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  const kill = async (signal: NodeJS.Signals = "SIGTERM", timeoutMs = 5000) => {
    if (!done) child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (code === "timeout") {
      child.kill("SIGKILL");
      return exited;
    }
    return code;
  };

  return {
    daemonId: opts.daemonId,
    child,
    logs,
    exited,
    waitForLog,
    count: (match) => logs.filter(match).length,
    taskPids: () => [...tracked],
    trackPid: (pid) => {
      if (Number.isInteger(pid) && pid > 1) tracked.add(pid);
    },
    kill,
    cleanup: async () => {
      if (!done) await kill("SIGKILL", 3000);
      for (const pid of tracked) killGroup(pid);
    },
    stderr: () => stderr,
  };
}
