/**
 * Runs the gateway as a child process the way `npm start` does: the bundle built from the sources
 * (built once per test process) run with plain `node`, so the child is the gateway itself (a signal
 * reaches it, not a launcher), and reads its JSON log lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { buildGateway } from "../../build.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

let bundle: string | undefined;
/** The gateway as `npm start` runs it, built from the current sources on first use. */
export function gatewayBundle(): string {
  bundle ??= buildGateway();
  return bundle;
}

/** A gateway child process. */
export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  /** Resolves with the port once the gateway logs that it serves. */
  readonly port: Promise<number>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Waits until a log line matches, or fails after `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  stderr(): string;
}

/**
 * Starts `main.ts` with the given flags and environment; authentication is off unless `args` or
 * `env` set it (suites about something else are not made to carry credentials).
 */
export function startGatewayProcess(args: readonly string[], env: NodeJS.ProcessEnv = {}): GatewayProcess {
  const auth = args.includes("--auth") || env.SPAGE_AUTH !== undefined ? [] : ["--auth", "off"];
  const child = spawn(process.execPath, [gatewayBundle(), ...auth, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  let partial = "";
  child.stdout?.on("data", (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
    }
    for (const w of waiters) w();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  // A signal death is reported as a shell would: 128 + the signal number (SIGKILL: 137).
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code, signal) =>
      resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null)),
    ),
  );
  const waitForLog = (match: (line: Record<string, unknown>) => boolean, timeoutMs = 15_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const hit = logs.find(match);
        if (hit) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      waiters.add(check);
      exited.then(() => {
        check();
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`gateway exited before the log line; stderr: ${stderr}`));
        }
      });
      check();
    });
  const port = waitForLog(
    (l) => typeof l.port === "number" && l.msg !== undefined && String(l.msg).includes("serving"),
  ).then((l) => Number(l.port));
  port.catch(() => {});
  return { child, logs, port, exited, waitForLog, stderr: () => stderr };
}
