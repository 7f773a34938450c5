/**
 * Server processes under test: the gateway and the two peers, each a separate Node process pinned to
 * core 0 (when `taskset` exists), and helpers to pin this process and read a process's resident memory.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const root = fileURLToPath(new URL("../", import.meta.url));

/**
 * The checkout whose gateway is started: this one, or SPAGE_BENCH_GATEWAY_DIR (another checkout with
 * its node_modules), e.g. to compare two versions with the same bench.
 */
export const gatewayDir = process.env.SPAGE_BENCH_GATEWAY_DIR || root;

/** The core the servers run on, and the one the load tools and this process run on. */
export const serverCore = 0;
export const loadCore = 1;

let tasksetPath: string | null | undefined;
/** Path of `taskset`, or null when the machine has none. */
export function taskset(): string | null {
  if (tasksetPath === undefined) {
    tasksetPath = ["/usr/bin/taskset", "/bin/taskset", "/usr/local/bin/taskset"].find(existsSync) ?? null;
  }
  return tasksetPath;
}

/** `cmd args` prefixed with `taskset -c core` when taskset exists. */
export function pinned(core: number, cmd: string, args: readonly string[]): [string, string[]] {
  const ts = taskset();
  return ts ? [ts, ["-c", String(core), cmd, ...args]] : [cmd, [...args]];
}

/** Pins every thread of this process to `core`; false when taskset is missing. */
export function pinSelf(core: number): boolean {
  const ts = taskset();
  if (!ts) return false;
  execFileSync(ts, ["-a", "-p", "-c", String(core), String(process.pid)], { stdio: "ignore" });
  return true;
}

/** Resident memory of a process in KiB (VmRSS), or NaN when it cannot be read. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A running server process. */
export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly baseUrl: string;
  /** Session token every client sends ("" when the server has no authentication on). */
  readonly token: string;
  /** The gateway's SQLite database file, when it was started with its own `--data-dir`. */
  readonly dbPath?: string;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 10 s), removes the data dir. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const tsxArgs = ["--import", "tsx"];

/**
 * Extra `node` flags for every gateway the bench starts, from SPAGE_BENCH_GATEWAY_NODE_FLAGS
 * (space-separated), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it under the bench's load.
 */
const gatewayNodeFlags = (): string[] =>
  (process.env.SPAGE_BENCH_GATEWAY_NODE_FLAGS ?? "").split(" ").filter(Boolean);
let gatewayHelp: string | undefined;
let gatewayEntry: string[] | undefined;

/**
 * How the gateway is run: as `npm start` runs it, the bundle built once from the checkout's sources
 * (server/build.ts) under plain `node`; a checkout without that build runs main.ts through tsx.
 */
function gatewayArgv(): string[] {
  if (!gatewayEntry) {
    if (existsSync(join(gatewayDir, "server", "build.ts"))) {
      execFileSync(process.execPath, [...tsxArgs, "server/build.ts"], { cwd: gatewayDir, stdio: "inherit" });
      gatewayEntry = [join(gatewayDir, "dist", "gateway.js")];
    } else {
      gatewayEntry = [...tsxArgs, "server/src/main.ts"];
    }
  }
  return gatewayEntry;
}

/** Whether the gateway has a flag, e.g. `--data-dir` (read from its `--help`). */
export function gatewayHas(flag: string): boolean {
  gatewayHelp ??= execFileSync(process.execPath, [...gatewayArgv(), "--help"], {
    cwd: gatewayDir,
    encoding: "utf8",
  });
  return gatewayHelp.includes(flag);
}

/** Whether the gateway has the `--data-dir` flag. */
export function gatewayHasDataDir(): boolean {
  return gatewayHas("--data-dir");
}

/**
 * Limits far above anything the bench offers, so they never refuse a call but are still checked
 * on every call (a rate of 0 would skip the check).
 */
const benchLimits = [
  "--rate-limits",
  ["tasks:read", "tasks:write", "tasks:cancel", "agent", "execution", "admin", "streams"]
    .map((c) => `${c}=100000000`)
    .join(","),
  "--max-streams-per-principal",
  "1000000",
];

function launch(
  name: string,
  cwd: string,
  nodeArgv: readonly string[],
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): ChildProcess {
  const [cmd, argv] = pinned(serverCore, process.execPath, [...nodeArgv, ...args]);
  const child = spawn(cmd, argv, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`cannot start ${name}`);
  return child;
}

const running = new Set<() => Promise<void>>();

/** Stops every server process still running (on errors and interrupts). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running].map((stop) => stop()));
}

function stopper(child: ChildProcess, cleanup: () => void): () => Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  const stop = async () => {
    running.delete(stop);
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
    cleanup();
  };
  running.add(stop);
  return stop;
}

function collect(child: ChildProcess): { out: () => string; err: () => string } {
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.length > 1_000_000) out = out.slice(-100_000);
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
    if (err.length > 1_000_000) err = err.slice(-100_000);
  });
  return { out: () => out, err: () => err };
}

/** How a gateway is started: authentication on or off, the unary fast path on or off. */
export interface GatewayOptions {
  /** Default true. */
  readonly auth?: boolean;
  /** Default true; false starts it with `--no-fast-path` (Connect's handler serves every call). */
  readonly fastPath?: boolean;
  /** PostgreSQL instead of a fresh SQLite data dir: the URL and schema (replicas share them). */
  readonly database?: { readonly url: string; readonly schema: string };
  /** The session token to use when this gateway prints no first admin key (a second replica). */
  readonly token?: string;
  /** More `serve` flags, e.g. `["--otel-endpoint", url]`. */
  readonly extraArgs?: readonly string[];
}

/** Whether the gateway has the unary fast path (and so `--no-fast-path`). */
export function gatewayHasFastPath(): boolean {
  return gatewayHas("--fast-path ");
}

/**
 * Starts the gateway on a free port with `--log-level warn` (at `info` it logs every RPC, and its
 * "serving" line, so readiness is polled on /readyz instead) and, when the flag exists, a fresh
 * `--data-dir`. With authentication (the default, when the gateway has it) the admin key it prints
 * on its first start is exchanged for a session token, which every bench client then sends.
 */
export async function startGateway(opts: GatewayOptions = {}): Promise<ServerProcess> {
  const auth = opts.auth ?? true;
  const port = await freePort();
  const args = ["--port", String(port), "--log-level", "warn"];
  if (opts.fastPath === false) {
    if (!gatewayHasFastPath()) throw new Error("this gateway has no --fast-path flag");
    args.push("--no-fast-path");
  }
  let dataDir: string | undefined;
  if (opts.database) {
    args.push("--database-url", opts.database.url, "--database-schema", opts.database.schema);
  } else if (gatewayHasDataDir()) {
    dataDir = mkdtempSync(join(tmpdir(), "spage-bench-"));
    args.push("--data-dir", dataDir);
  }
  const hasAuth = gatewayHas("--auth ");
  if (hasAuth) args.push("--auth", auth ? "on" : "off", ...benchLimits);
  args.push(...(opts.extraArgs ?? []));
  const child = launch("gateway", gatewayDir, [...gatewayNodeFlags(), ...gatewayArgv()], args, {});
  const logs = collect(child);
  const stop = stopper(child, () => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`gateway exited before it was ready:\n${logs.err()}${logs.out()}`);
    }
    const ok = await fetch(`${baseUrl}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`gateway not ready on ${baseUrl} within 30 s:\n${logs.err()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let token = opts.token ?? "";
  if (hasAuth && auth && !token) {
    const key = /spk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(logs.err())?.[0];
    const res = key
      ? await fetch(`${baseUrl}/spage.api.SpageAPI/Authenticate`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ apiKey: key, clientId: "bench" }),
        })
      : undefined;
    token = res?.ok ? ((await res.json()) as { token: string }).token : "";
    if (!token) {
      await stop();
      throw new Error(`no session token from the gateway's first admin key:\n${logs.err()}`);
    }
  }
  const dbPath = dataDir ? join(dataDir, "spage.db") : undefined;
  return { name: "gateway", pid: child.pid as number, port, baseUrl, token, dbPath, stop };
}

/** Runs `body` with a fresh gateway, stopping it afterwards. */
export async function withGateway<T>(
  body: (gw: ServerProcess) => Promise<T>,
  opts: GatewayOptions = {},
): Promise<T> {
  const gw = await startGateway(opts);
  try {
    return await body(gw);
  } finally {
    await gw.stop();
  }
}

/** Runs `body` with a peer script started as by startPeer(), stopping it afterwards. */
export async function withPeer<T>(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  body: (peer: ServerProcess) => Promise<T>,
): Promise<T> {
  const peer = await startPeer(name, script, env);
  try {
    return await body(peer);
  } finally {
    await peer.stop();
  }
}

/** Starts a peer script (bench/peers/*.ts), which prints `{"port":N}` once it listens. */
export async function startPeer(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<ServerProcess> {
  const child = launch(name, root, [...tsxArgs, script], [], env);
  const logs = collect(child);
  const stop = stopper(child, () => {});
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${logs.err()}`)), 30_000);
    const onData = () => {
      const m = /"port":(\d+)/.exec(logs.out());
      if (m) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", () => reject(new Error(`${name} exited:\n${logs.err()}`)));
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { name, pid: child.pid as number, port, baseUrl: `http://127.0.0.1:${port}`, token: "", stop };
}

/** CPU seconds (user + system) a process has used so far, or NaN when it cannot be read. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "pid (comm) ", utime and stime are the 12th and 13th fields, in clock ticks (100/s).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Busy core-seconds of the whole machine so far (all CPUs, from /proc/stat), or NaN. */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    return (ticks.reduce((a, b) => a + b, 0) - idle) / 100;
  } catch {
    return Number.NaN;
  }
}
