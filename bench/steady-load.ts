/**
 * One steady-state load run: h2load at 256 in flight (4 HTTP/2 connections of 64 streams, or 256
 * HTTP/1.1 connections with `--h1`) for a short measured part after a 1 s warm-up on the same
 * connections, so every connection is open and busy when measuring starts. Used where two figures
 * are compared as a ratio (writes against reads): autocannon opens
 * fresh connections for each run, and how fast Node accepts them under load varies more between
 * runs than what is compared. Every response must be a 2xx without tool errors.
 *
 * This machine's speed drifts by tens of percent within seconds, so a comparison is made of many
 * short runs of the two sides in alternation, A B B A A B ..., and judged by the median of the
 * ratios of adjacent runs (`pairedRatio`): a pair shares the machine's state, and the median is not
 * moved by the one pair a hiccup falls into.
 */
import { check } from "./checks.js";
import { cpuSeconds } from "./gateway.js";
import { type H2loadResult, type H2loadRun, runH2load } from "./h2load.js";
import { type Method, type Protocol, protocolLabel, rawRequest } from "./protocols.js";
import { measureSeconds } from "./unary.js";

/** Seconds of load before each measured run. */
export const warmUpSeconds = 1;

/** Seconds of each measured run: about half the bench's measure (h2load takes whole seconds). */
export const steadySeconds = Math.max(1, Math.ceil(measureSeconds / 2));

/** Measured runs of each side in a comparison. */
export const steadyRounds = 8;

/** What one run measured. */
export interface SteadyRun {
  readonly callsPerSec: number;
  /** Server CPU per call in microseconds, from /proc over the warm-up and the measured part. */
  readonly cpuUsPerCall: number;
  /** Calls completed in the measured part. */
  readonly done: number;
}

/** A server under load: where it listens, its process and its bearer token ("" for none). */
export interface SteadyTarget {
  readonly label: string;
  readonly baseUrl: string;
  readonly pid: number;
  readonly token: string;
}

/**
 * The h2load load of `method` over `protocol` against `t`, 256 in flight: 4 HTTP/2 connections of
 * 64 streams, or 256 HTTP/1.1 connections (the run's duration is the caller's).
 */
export function loadOf(
  t: SteadyTarget,
  protocol: Protocol,
  method: Method,
  taskId: string,
): Pick<H2loadRun, "url" | "request" | "clients" | "streamsPerClient" | "h1"> {
  const request = rawRequest(protocol, method, taskId, t.token);
  const h1 = protocol !== "grpc";
  return {
    url: `${t.baseUrl}${request.path}`,
    request,
    clients: h1 ? 256 : 4,
    streamsPerClient: h1 ? 1 : 64,
    h1,
  };
}

/** Checks h2load saw no failed, errored or timed-out request and only 2xx answers. */
export function checkAllAnswered(r: H2loadResult, at: string): void {
  check(
    r.failed + r.errored + r.timeout === 0,
    `${at}: h2load: ${r.failed} failed, ${r.errored} errored, ${r.timeout} timed out`,
  );
  check(
    r.statusOther + r.loggedNon2xx === 0,
    `${at}: h2load: ${r.statusOther + r.loggedNon2xx} responses not 2xx`,
  );
}

/** Loads `method` over `protocol` for the bench's measured seconds after a warm-up. */
export async function steadyRun(
  t: SteadyTarget,
  protocol: Protocol,
  method: Method,
  taskId: string,
): Promise<SteadyRun> {
  const cpu0 = cpuSeconds(t.pid);
  const r = await runH2load({
    ...loadOf(t, protocol, method, taskId),
    warmUpS: warmUpSeconds,
    durationS: steadySeconds,
  });
  checkAllAnswered(r, `${t.label} ${protocolLabel[protocol]} ${method}`);
  // h2load counts only the measured calls; the warm-up is taken to run at the same rate.
  const calls = r.done * (1 + warmUpSeconds / steadySeconds);
  return {
    callsPerSec: r.callsPerSec,
    cpuUsPerCall: ((cpuSeconds(t.pid) - cpu0) / calls) * 1e6,
    done: r.done,
  };
}

/** Mean of a list (0 for none). */
export const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Median of a list (NaN for none). */
export function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  if (a.length === 0) return Number.NaN;
  const mid = Math.floor(a.length / 2);
  return a.length % 2 === 1 ? (a[mid] as number) : ((a[mid - 1] as number) + (a[mid] as number)) / 2;
}

/** Median over rounds of `a[i].callsPerSec / b[i].callsPerSec` (runs of the same round were adjacent). */
export function pairedRatio(a: readonly SteadyRun[], b: readonly SteadyRun[]): number {
  return median(a.map((x, i) => x.callsPerSec / (b[i]?.callsPerSec ?? Number.NaN)));
}
