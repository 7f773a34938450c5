/**
 * Load with h2load (nghttp2): native gRPC over h2c with prior knowledge, or HTTP/1.1 (`--h1`), a
 * fixed request body file, per-request latencies from its --log-file.
 */
import { type ChildProcess, execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSeconds, loadCore, pinned } from "./gateway.js";
import type { RawRequest } from "./protocols.js";
import { p50p99 } from "./stats.js";

/** What to tell when h2load is missing. */
export const h2loadMissing =
  "h2load not found. Install it (Debian/Ubuntu: `apt-get install -y nghttp2-client`; macOS: `brew install nghttp2`) and run `npm run bench` again.";

/** Whether h2load is on the PATH. */
export function h2loadAvailable(): boolean {
  try {
    execFileSync("h2load", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** One h2load run: either for a duration or a fixed number of requests. */
export interface H2loadRun {
  readonly url: string;
  readonly request: RawRequest;
  readonly clients: number;
  readonly streamsPerClient: number;
  readonly durationS?: number;
  readonly requests?: number;
  /** HTTP/1.1 instead of h2c (one request in flight per connection). */
  readonly h1?: boolean;
  /**
   * Seconds of load before the measured `durationS`, on the same connections: every connection is
   * open and busy when measuring starts, and only the measured part is counted.
   */
  readonly warmUpS?: number;
  /** Called with the h2load process once it is started (e.g. to pause and resume it). */
  readonly started?: (h2load: ChildProcess) => void;
}

/** What h2load reported. */
export interface H2loadResult {
  readonly seconds: number;
  readonly started: number;
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status2xx: number;
  readonly statusOther: number;
  /** Response DATA bytes received (gRPC messages with their 5-byte envelopes). */
  readonly dataBytes: number;
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Requests in the log file whose HTTP status was not 2xx. */
  readonly loggedNon2xx: number;
  /** h2load's CPU seconds (approximate). */
  readonly cpuSeconds: number;
  readonly output: string;
}

const num = (re: RegExp, text: string): number => {
  const m = re.exec(text);
  if (!m) throw new Error(`h2load output has no match for ${re}:\n${text}`);
  return Number(m[1]);
};

/** Runs h2load pinned to the load core and parses its summary and log file. */
export async function runH2load(run: H2loadRun): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "spage-h2load-"));
  try {
    const bodyFile = join(dir, "body");
    const logFile = join(dir, "log");
    writeFileSync(bodyFile, run.request.body);
    const args = ["-c", String(run.clients), "-m", String(run.streamsPerClient), "-t", "1"];
    if (run.h1) args.push("--h1");
    if (run.requests !== undefined) args.push("-n", String(run.requests));
    else args.push("-D", String(run.durationS ?? 5));
    if (run.warmUpS !== undefined && run.requests === undefined) args.push(`--warm-up-time=${run.warmUpS}`);
    args.push("-d", bodyFile, `--log-file=${logFile}`);
    for (const [k, v] of Object.entries(run.request.headers)) args.push("-H", `${k}: ${v}`);
    args.push(run.url);
    const [cmd, argv] = pinned(loadCore, "h2load", args);
    let cpu = 0;
    const output = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        cmd,
        argv,
        { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`h2load failed: ${err.message}\n${stdout}${stderr}`)) : resolve(stdout),
      );
      // h2load's CPU time, sampled until it exits (so up to 50 ms of it is missed).
      const timer = setInterval(() => {
        const c = child.pid === undefined ? Number.NaN : cpuSeconds(child.pid);
        if (Number.isFinite(c)) cpu = c;
      }, 50);
      child.once("exit", () => clearInterval(timer));
      run.started?.(child);
    });
    const latUs: number[] = [];
    let loggedNon2xx = 0;
    for (const line of readFileSync(logFile, "utf8").split("\n")) {
      const cols = line.split("\t");
      if (cols.length < 3) continue;
      const status = Number(cols[1]);
      // Status 0: still in flight when a timed run ended (h2load's summary counts real failures).
      if (status !== 0 && (status < 200 || status > 299)) loggedNon2xx++;
      latUs.push(Number(cols[2]));
    }
    const { p50, p99 } = p50p99(latUs);
    const unit = /finished in [\d.]+(us|ms|s),/.exec(output)?.[1];
    const seconds = num(/finished in ([\d.]+)/, output) / (unit === "us" ? 1e6 : unit === "ms" ? 1e3 : 1);
    const done = num(/requests: \d+ total, \d+ started, (\d+) done/, output);
    // With a warm-up, "finished in" includes it; h2load's own rate covers the measured part only.
    const rate =
      run.warmUpS !== undefined ? num(/finished in [\d.]+\w+, ([\d.]+) req\/s/, output) : done / seconds;
    return {
      seconds,
      started: num(/requests: \d+ total, (\d+) started/, output),
      done,
      succeeded: num(/(\d+) succeeded/, output),
      failed: num(/(\d+) failed/, output),
      errored: num(/(\d+) errored/, output),
      timeout: num(/(\d+) timeout/, output),
      status2xx: num(/status codes: (\d+) 2xx/, output),
      statusOther: num(/(\d+) 3xx/, output) + num(/(\d+) 4xx/, output) + num(/(\d+) 5xx/, output),
      dataBytes: num(/\((\d+)\) data/, output),
      callsPerSec: rate,
      p50Ms: p50 / 1000,
      p99Ms: p99 / 1000,
      loggedNon2xx,
      cpuSeconds: cpu,
      output,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
