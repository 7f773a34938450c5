/**
 * Fan-out against a plain grpc-js server: 100 WatchEvents streams over 4 HTTP/2 connections, then
 * SubmitTask calls (32 in flight), each of which reaches every stream as one event. The same client
 * code runs against a fresh gateway and against bench/peers/grpc-js-fan-out-peer.ts, which writes,
 * for each submit, the event the gateway sent for it (recorded by the first watcher), so both send
 * the same number of events with the same message bytes (checked). Each server first gets a probe
 * (every stream live) and a warm-up batch; the measured batch runs from the first submit's send to
 * the last event's receipt. Target: the gateway delivers at least as many messages per second.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { toBinary } from "@bufbuild/protobuf";
import { EventSchema } from "../gen/spage/core/common_pb.js";
import { check, note } from "./checks.js";
import { cpuSeconds, machineBusySeconds, type ServerProcess, withGateway, withPeer } from "./gateway.js";
import { envelope } from "./grpc-frames.js";
import { type ApiClient, apiClient, benchTaskType } from "./protocols.js";
import { measureSeconds } from "./unary.js";
import { openWatchStreams, waitFor } from "./watch-streams.js";

/** One server's measured batch. */
export interface FanOutSide {
  readonly server: string;
  readonly delivered: number;
  readonly wanted: number;
  readonly seconds: number;
  readonly messagesPerSec: number;
  /** Shares of a core: the server, this process (watchers and submitter), everything else. */
  readonly serverCpu: number;
  readonly clientCpu: number;
  readonly otherCpu: number;
}

/** Both servers' figures. */
export interface FanOutResult {
  readonly watchers: number;
  readonly sessions: number;
  /** Events (submits) in the measured batch, and submits in flight. */
  readonly events: number;
  readonly inFlight: number;
  readonly gateway?: FanOutSide;
  readonly peer?: FanOutSide;
}

interface FanOutOptions {
  readonly watchers: number;
  readonly sessions: number;
  readonly events: number;
  readonly warmUpEvents: number;
  readonly inFlight: number;
}

/** The peer's name in the table. */
const peerName = "grpc-js fan-out peer";

/** Submits `ids` with `inFlight` calls at a time; returns the failures. */
async function submitAll(client: ApiClient, ids: readonly string[], inFlight: number): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const taskId = ids[next++] as string;
      try {
        await client.api.submitTask({ taskId, type: benchTaskType });
      } catch (err) {
        failures.push(`${taskId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return failures;
}

/**
 * Runs probe, warm-up and measured batch against one server. Every event the first watcher receives
 * is kept in `record` (task id -> binary Event), on both servers alike.
 */
async function fanOutRun(
  server: ServerProcess,
  label: string,
  opts: FanOutOptions,
  record: Map<string, Uint8Array>,
): Promise<FanOutSide> {
  note(`fan-out: ${label}, ${opts.watchers} watchers, ${opts.events} events…`);
  // Events per batch (the task id's prefix) and watcher.
  const counts = new Map<string, Int32Array>(
    ["probe", "warm", "fan"].map((b) => [b, new Int32Array(opts.watchers)]),
  );
  let lastDelivery = 0;
  const streams = openWatchStreams(
    { baseUrl: server.baseUrl, token: server.token, watchers: opts.watchers, sessions: opts.sessions },
    (i, ev, at) => {
      if (i === 0) record.set(ev.taskId, toBinary(EventSchema, ev));
      if (ev.type !== "task.submitted") return;
      const batch = counts.get(ev.taskId.slice(0, ev.taskId.indexOf("-")));
      if (!batch) return;
      batch[i] = (batch[i] as number) + 1;
      lastDelivery = at;
    },
  );
  const submitter = apiClient("grpc", server.baseUrl, server.token);
  const failed = () => streams.errors.length > 0;
  const everyWatcherHas = (batch: string, n: number) => () =>
    (counts.get(batch) as Int32Array).every((c) => c >= n);
  try {
    // A stream is live once it has received the probe. The same probe is sent again until every
    // stream has it: the gateway answers a repeat as the same task (and replays the log to a new
    // stream anyway), the peer writes its event again to every stream.
    const probeDeadline = performance.now() + 15_000;
    while (!everyWatcherHas("probe", 1)() && performance.now() < probeDeadline && !failed()) {
      await submitter.api.submitTask({ taskId: "probe-0", type: benchTaskType });
      await waitFor(everyWatcherHas("probe", 1), 500, failed);
    }
    if (!everyWatcherHas("probe", 1)()) {
      throw new Error(`fan-out ${label}: watchers not live: ${streams.errors[0] ?? "timeout"}`);
    }
    const warm = Array.from({ length: opts.warmUpEvents }, (_, n) => `warm-${n}`);
    const warmFailures = await submitAll(submitter, warm, opts.inFlight);
    await waitFor(everyWatcherHas("warm", warm.length), 30_000, failed);

    const ids = Array.from({ length: opts.events }, (_, n) => `fan-${n}`);
    const machine0 = machineBusySeconds();
    const server0 = cpuSeconds(server.pid);
    const client0 = process.cpuUsage();
    const started = performance.now();
    const failures = await submitAll(submitter, ids, opts.inFlight);
    await waitFor(everyWatcherHas("fan", ids.length), 60_000, failed);
    const wall = (performance.now() - started) / 1000;
    const client = process.cpuUsage(client0);
    const serverSeconds = cpuSeconds(server.pid) - server0;
    const clientSeconds = (client.user + client.system) / 1e6;
    const otherSeconds = machineBusySeconds() - machine0 - serverSeconds - clientSeconds;

    const delivered = (counts.get("fan") as Int32Array).reduce((a, b) => a + b, 0);
    const wanted = ids.length * opts.watchers;
    const seconds = (lastDelivery - started) / 1000;
    check(
      failures.length + warmFailures.length === 0,
      `fan-out ${label}: ${failures.length + warmFailures.length} submits failed: ${[...warmFailures, ...failures][0]}`,
    );
    check(
      streams.errors.length === 0,
      `fan-out ${label}: ${streams.errors.length} watch streams failed: ${streams.errors[0]}`,
    );
    check(
      delivered === wanted,
      `fan-out ${label}: ${delivered} events delivered, want ${wanted} (${ids.length} x ${opts.watchers})`,
    );
    return {
      server: label,
      delivered,
      wanted,
      seconds,
      messagesPerSec: delivered / seconds,
      serverCpu: serverSeconds / wall,
      clientCpu: clientSeconds / wall,
      otherCpu: Math.max(0, otherSeconds) / wall,
    };
  } finally {
    await streams.close();
    submitter.close();
  }
}

/** Measures a fresh gateway, then the grpc-js peer sending the events the gateway sent. */
export async function measureFanOut(
  opts: FanOutOptions = {
    watchers: 100,
    sessions: 4,
    events: Math.max(100, Math.round(200 * measureSeconds)),
    warmUpEvents: Math.max(20, Math.round(40 * measureSeconds)),
    inFlight: 32,
  },
): Promise<FanOutResult> {
  const base = {
    watchers: opts.watchers,
    sessions: opts.sessions,
    events: opts.events,
    inFlight: opts.inFlight,
  };
  const recorded = new Map<string, Uint8Array>();
  const gateway = await withGateway((gw) => fanOutRun(gw, "gateway", opts, recorded));
  const dir = mkdtempSync(join(tmpdir(), "spage-fan-out-"));
  try {
    const file = join(dir, "events");
    writeFileSync(file, Buffer.concat([...recorded.values()].map((bytes) => envelope(bytes))));
    const echoed = new Map<string, Uint8Array>();
    const peer = await withPeer(
      peerName,
      "bench/peers/grpc-js-fan-out-peer.ts",
      { SPAGE_BENCH_EVENTS_FILE: file },
      (p) => fanOutRun(p, peerName, opts, echoed),
    );
    const differ = [...recorded].filter(
      ([id, bytes]) => !Buffer.from(bytes).equals(echoed.get(id) ?? new Uint8Array()),
    );
    check(
      differ.length === 0 && echoed.size === recorded.size,
      `fan-out: the peer's events differ from the gateway's (${differ.length} of ${recorded.size} differ, ${echoed.size} received)`,
    );
    check(
      gateway.messagesPerSec >= peer.messagesPerSec,
      `fan-out: the gateway delivers ${Math.round(gateway.messagesPerSec)} messages/s to ${opts.watchers} watchers, ${(gateway.messagesPerSec / peer.messagesPerSec).toFixed(2)}x the grpc-js peer's ${Math.round(peer.messagesPerSec)}, under the 1.00x target`,
    );
    return { ...base, gateway, peer };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The section of BENCHMARKS.md. */
export function renderFanOut(r: FanOutResult): string[] {
  const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
  const pct = (n: number) => (Number.isFinite(n) ? `${Math.round(n * 100)} %` : "n/a");
  const sides = [r.gateway, r.peer].filter((s): s is FanOutSide => s !== undefined);
  const ratio =
    r.gateway && r.peer ? `${(r.gateway.messagesPerSec / r.peer.messagesPerSec).toFixed(2)}x` : "n/a";
  return [
    `### Fan-out to ${r.watchers} watchers against a plain grpc-js server`,
    "",
    `| Server | Watchers (HTTP/2 connections) | Events (SubmitTask, ${r.inFlight} in flight) | Messages delivered | Messages/s delivered | server / bench CPU | other CPU |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...sides.map(
      (s) =>
        `| ${s.server} | ${r.watchers} (${r.sessions}) | ${int(r.events)} | ${int(s.delivered)} of ${int(s.wanted)} | ${int(s.messagesPerSec)} | ${pct(s.serverCpu)} / ${pct(s.clientCpu)} | ${pct(s.otherCpu)} |`,
    ),
    "",
    `Gateway ÷ grpc-js peer, messages/s (target ≥ 1.00x): ${ratio}`,
    "",
  ];
}
