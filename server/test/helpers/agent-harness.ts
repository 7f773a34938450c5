/**
 * Shared pieces of the agent end-to-end tests (every part a real process): a gateway child with fast
 * daemon timings on a temporary data directory, the `spage-gateway` command line as a child process,
 * bounded waits on a task's state and stored events, and a cleanup list that kills whatever a test
 * started, even when it fails.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@connectrpc/connect";
import type { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { type Event, type Task, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { shellQuote } from "../../src/agent/command-template.js";
import { type GatewayClients, gatewayClients, watchUntil } from "./event-watch.js";
import { type GatewayProcess, startGatewayProcess } from "./gateway-process.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const cli = fileURLToPath(new URL("../../../bin/spage-gateway.js", import.meta.url));

/** Daemon timings fast enough for tests. */
export const fastTimings = {
  "lease-ms": 1000,
  "lost-grace-ms": 2000,
  "cancel-grace-ms": 2000,
  "heartbeat-ms": 200,
  "sweep-interval-ms": 50,
  "dispatch-poll-ms": 100,
} as const;

/** Things to undo at the end of a test, run last-in first-out; every step runs even if one fails. */
export class Cleanup {
  private readonly steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}

/** A temporary directory, removed by `cleanup`. */
export function tempDir(cleanup: Cleanup, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A gateway child process and clients for it. */
export interface RunningGateway {
  readonly gw: GatewayProcess;
  readonly port: number;
  readonly url: string;
  /** Pid of the serving process (from its own log line). */
  readonly pid: number;
  readonly clients: GatewayClients;
  readonly api: Client<typeof SpageAPI>;
  /** Closes the clients and stops the gateway (SIGTERM, SIGKILL after 5 s); idempotent. */
  stop(): Promise<void>;
  /** Closes the clients and kills the gateway with SIGKILL; resolves once it exited. */
  crash(): Promise<void>;
}

/** Starts a gateway on `dataDir` with fast timings (overridable) and registers its cleanup. */
export async function startGateway(
  cleanup: Cleanup,
  dataDir: string,
  opts: {
    port?: number;
    timings?: Partial<Record<keyof typeof fastTimings, number>>;
    /** More `serve` flags, e.g. `["--auth", "on"]`. */
    extraArgs?: readonly string[];
  } = {},
): Promise<RunningGateway> {
  const timings = { ...fastTimings, ...opts.timings };
  const args = [
    "--port",
    String(opts.port ?? 0),
    "--data-dir",
    dataDir,
    "--log-level",
    "info",
    ...(opts.extraArgs ?? []),
  ];
  for (const [flag, value] of Object.entries(timings)) args.push(`--${flag}`, String(value));
  const gw = startGatewayProcess(args, { SPAGE_HOST: "127.0.0.1" });
  let stopped = false;
  const kill = async (signal: NodeJS.Signals) => {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const res = await Promise.race([
      gw.exited,
      new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), 5000);
      }),
    ]);
    clearTimeout(timer);
    if (res === "timeout") {
      gw.child.kill("SIGKILL");
      await gw.exited;
    }
  };
  cleanup.add(() => kill("SIGKILL"));
  const port = await gw.port;
  const serving = await gw.waitForLog((l) => l.port === port && typeof l.pid === "number");
  const url = `http://127.0.0.1:${port}`;
  const clients = gatewayClients(url);
  cleanup.add(() => clients.close());
  const stop = async (signal: NodeJS.Signals) => {
    if (!stopped) {
      stopped = true;
      clients.close();
    }
    await kill(signal);
  };
  return {
    gw,
    port,
    url,
    pid: Number(serving.pid),
    clients,
    api: clients.api,
    stop: () => stop("SIGTERM"),
    crash: () => stop("SIGKILL"),
  };
}

/** The outcome of a finished command-line run. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A `spage-gateway` command running as a child process. */
export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the command exits. */
  readonly done: Promise<CliResult>;
  /** Resolves once stdout has a line matching `match`; fails after `timeoutMs` or if it exits first. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** Starts `spage-gateway <args>`; killed (SIGKILL) by `cleanup` if still running. */
export function spawnCli(cleanup: Cleanup, args: readonly string[]): CliProcess {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
    for (const w of [...waiters]) w();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  const done = new Promise<CliResult>((resolve) =>
    child.on("close", (code, signal) => {
      exited = true;
      for (const w of [...waiters]) w();
      resolve({ code: code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null), stdout, stderr });
    }),
  );
  cleanup.add(async () => {
    if (!exited) {
      child.kill("SIGKILL");
      await done;
    }
  });
  const waitForLine = (match: (line: string) => boolean, timeoutMs = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = stdout.split("\n").find(match);
        if (hit !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        } else if (exited) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`spage-gateway ${args[0]} exited first; stdout:\n${stdout}\nstderr:\n${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `spage-gateway ${args[0]}: no matching line within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`,
          ),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { child, stdout: () => stdout, stderr: () => stderr, done, waitForLine };
}

/** Runs `spage-gateway <args>` to the end (killed after `timeoutMs`). */
export async function runCli(
  cleanup: Cleanup,
  args: readonly string[],
  timeoutMs = 15_000,
): Promise<CliResult> {
  const p = spawnCli(cleanup, args);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  try {
    return await p.done;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls GetTaskStatus until `done(task)` holds; fails after `timeoutMs` with the last state seen.
 */
export async function waitForTask(
  api: Client<typeof SpageAPI>,
  taskId: string,
  done: (task: Task) => boolean,
  timeoutMs = 10_000,
  what = "the expected state",
): Promise<Task> {
  const deadline = Date.now() + timeoutMs;
  let last: Task | undefined;
  for (;;) {
    try {
      last = (await api.getTaskStatus({ taskId }, { timeoutMs: 2000 })).task;
      if (last && done(last)) return last;
    } catch {
      // Not there yet (or the gateway restarts): poll again.
    }
    if (Date.now() > deadline) {
      throw new Error(
        `task ${taskId} did not reach ${what} within ${timeoutMs} ms; last: ${
          last ? `${TaskStatus[last.status]} attempt ${last.attempt} error "${last.error}"` : "none"
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the task is in `status`. */
export function waitForStatus(
  api: Client<typeof SpageAPI>,
  taskId: string,
  status: TaskStatus,
  timeoutMs = 10_000,
): Promise<Task> {
  return waitForTask(api, taskId, (t) => t.status === status, timeoutMs, TaskStatus[status]);
}

/** Every stored event of the gateway up to now (read with WatchEvents from the start). */
export async function storedEvents(api: Client<typeof SpageAPI>, taskId?: string): Promise<Event[]> {
  const list = await api.listTasks({ limit: 1 });
  const upTo = list.sequence;
  if (upTo === 0n) return [];
  const events = await watchUntil(
    api,
    { afterSequence: 0n },
    (evs) => (evs[evs.length - 1]?.sequence ?? 0n) >= upTo,
    10_000,
  );
  return taskId === undefined ? events : events.filter((e) => e.taskId === taskId);
}

/** The `task.status` targets of a task's events, in order ("PENDING", "ASSIGNED", ...). */
export function statusPath(events: readonly Event[]): string[] {
  return events.filter((e) => e.type === "task.status").map((e) => e.data.to ?? "?");
}

/**
 * The text lines of a task's `task.output` events, in sequence order, after checking that the
 * chunks' seq numbers run 1, 2, 3 ... without gap or repeat.
 */
export function outputLines(
  events: readonly Event[],
  stream = "stdout",
): { lines: string[]; seqs: number[] } {
  const chunks = events.filter((e) => e.type === "task.output");
  const seqs = chunks.map((e) => Number(e.data.seq));
  const lines = chunks
    .filter((e) => (e.data.stream ?? "stdout") === stream)
    .flatMap((e) => (e.data.line ?? "").split("\n"));
  return { lines, seqs };
}

/** `["prefix-1", ..., "prefix-n"]`. */
export function numbered(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
}

/** Resolves with `promise`, or fails after `timeoutMs` with `describe()` (evaluated then). */
export async function within<T>(promise: Promise<T>, timeoutMs: number, describe: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`nothing within ${timeoutMs} ms: ${describe()}`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits (polling) until a file exists; fails after `timeoutMs`. */
export async function waitForFile(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Shell: prints `<prefix>from` ... `<prefix>to`, one line every `everyS` seconds. */
export function shPrintRange(prefix: string, from: number, to: number, everyS: number): string {
  return `i=${from}; while [ $i -le ${to} ]; do echo ${prefix}$i; i=$((i+1)); sleep ${everyS}; done`;
}

/** Shell: waits until `path` exists (gives up after about 20 s, so a forgotten gate ends too). */
export function shWaitFile(path: string): string {
  return `n=0; while [ ! -e ${shellQuote(path)} ] && [ $n -lt 1000 ]; do sleep 0.02; n=$((n+1)); done`;
}
