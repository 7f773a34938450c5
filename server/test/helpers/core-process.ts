/**
 * The fake Spage core (fixtures/fake-spage-core.ts) as a real child process started by hand, as an
 * operator or a CI job starts `spage run --daemon-grpc ...` with no daemon involved: its stdout read
 * line by line, and signals to kill or stop it mid-run. Also the agent's --command that runs it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { shellQuote } from "../../src/agent/command-template.js";

const fakeCore = fileURLToPath(new URL("../fixtures/fake-spage-core.ts", import.meta.url));

/**
 * An agent's --command running the fake core: `raw` parts go in as they are (placeholders such as
 * {endpoint}, filled in shell-quoted by the agent), `extra` ones shell-quoted.
 */
export function fakeCoreCommand(raw: readonly string[], extra: readonly string[] = []): string {
  return [
    shellQuote(process.execPath),
    "--import",
    "tsx",
    shellQuote(fakeCore),
    ...raw,
    ...extra.map(shellQuote),
  ].join(" ");
}

/** The placeholders of a task-era run: endpoint, task id, playbook and variables. */
export const taskEraPlaceholders: readonly string[] = [
  "--daemon-grpc",
  "{endpoint}",
  "--task-id",
  "{task_id}",
  "--playbook",
  "{playbook}",
  "--variables",
  "{variables_json}",
];

/** A running fake core. */
export interface CoreProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code, or the signal that ended it. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  /** Waits for a stdout line matching `match`; fails after `timeoutMs` showing what it printed. */
  waitForLine(match: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (SIGKILL, SIGSTOP, ...). */
  signal(signal: NodeJS.Signals): void;
  /** Kills it with SIGKILL if still alive and waits for it to exit. */
  cleanup(): Promise<void>;
}

/** Starts `fake-spage-core --daemon-grpc <target> --task-id <taskId> ...extra`. */
export function startCoreProcess(target: string, taskId: string, extra: readonly string[] = []): CoreProcess {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fakeCore, "--daemon-grpc", target, "--task-id", taskId, ...extra],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const lines: string[] = [];
  let stderr = "";
  const waiters = new Set<() => void>();
  let partial = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    for (const w of [...waiters]) w();
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ?? code)),
  );
  return {
    child,
    exited,
    waitForLine(match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.find((l) => match.test(l));
          if (line === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(line);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `fake core printed no line matching ${match} in ${timeoutMs} ms:\n${lines.join("\n")}\n${stderr}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    async cleanup() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
