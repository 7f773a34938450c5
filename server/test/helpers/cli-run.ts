/**
 * Runs `spage-gateway <command>` (bin/spage-gateway.js) as a child process to the end, with an
 * environment free of the SPAGE_* variables that would change what the command does (so a test says
 * every flag it means), and calls the gateway with Connect JSON over plain `fetch`.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const cli = fileURLToPath(new URL("../../../bin/spage-gateway.js", import.meta.url));

/** The outcome of a finished command. */
export interface CliOutcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of the test run without SPAGE_* variables, plus `extra`. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SPAGE_")) env[k] = v;
  return { ...env, ...extra };
}

/** Runs `spage-gateway <args>`; kills it (SIGKILL) and fails after `timeoutMs`. */
export function runCli(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliOutcome> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  return new Promise<CliOutcome>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: root,
      env: cleanEnv(opts.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new Error(
            `spage-gateway ${args.join(" ")} did not end within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`,
          ),
        );
        return;
      }
      resolve({ code: code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null), stdout, stderr });
    });
  });
}

/** Describes an outcome for assertion messages. */
export function show(r: CliOutcome): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** The answer of a Connect JSON call. */
export interface ConnectAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * Calls `<service>/<method>` on `baseUrl` with Connect JSON over HTTP/1.1, with
 * `Authorization: Bearer <token>` when a token is given.
 */
export async function connectCall(
  baseUrl: string,
  method: string,
  body: unknown,
  token?: string,
): Promise<ConnectAnswer> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${baseUrl}/${method}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed };
}

/** A long-running `spage-gateway <command>` child (e.g. `agent`), whose stderr lines are collected. */
export interface CliChild {
  readonly child: ReturnType<typeof spawn>;
  /** Resolves with the exit code (128 + signal number after a signal). */
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** Waits until a stderr line matches, or fails after `timeoutMs` (or when the child exits first). */
  waitForStderr(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Starts `spage-gateway <args>` and leaves it running. */
export function startCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliChild {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: root,
    env: cleanEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let done = false;
  const waiters = new Set<() => void>();
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code, signal) => {
      done = true;
      for (const w of [...waiters]) w();
      resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null));
    }),
  );
  const waitForStderr = (match: (line: string) => boolean, timeoutMs = 15_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = stderr.split("\n").find(match);
        if (hit !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        } else if (done) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`spage-gateway ${args[0]} exited before the expected line; stderr:\n${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(`spage-gateway ${args[0]}: no matching line within ${timeoutMs} ms; stderr:\n${stderr}`),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const stop = async (timeoutMs = 5000) => {
    if (!done) child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (code !== "timeout") return code;
    child.kill("SIGKILL");
    return exited;
  };
  return { child, exited, stdout: () => stdout, stderr: () => stderr, waitForStderr, stop };
}
