/**
 * Resident memory of the gateway: idle after start, then with 10,000 idle WatchEvents streams open
 * (raw node:http2, spread over 20 connections), then after they are all closed.
 */
import * as http2 from "node:http2";
import { check, note } from "./checks.js";
import { rssKiB, type ServerProcess } from "./gateway.js";
import { envelope } from "./grpc-frames.js";
import { apiClient } from "./protocols.js";

/** Target for the resident memory with 10,000 idle watch streams open: under 200 MB. */
export const memoryTargetBytes = 200e6;

export interface MemoryResult {
  readonly idleMiB: number;
  readonly streams: number;
  readonly connections: number;
  readonly withStreamsMiB: number;
  /** Extra resident memory per open stream, in KiB. */
  readonly perStreamKiB: number;
  readonly afterCloseMiB: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number) => kib / 1024;

/** The gateway's count of open watch streams (GetMetrics gauge), or undefined if it has none. */
async function openWatchers(baseUrl: string, token: string): Promise<number | undefined> {
  const client = apiClient("grpc", baseUrl, token);
  try {
    const m = await client.api.getMetrics({});
    return m.gauges.watchers_connected ?? m.gauges.watch_streams_open;
  } finally {
    client.close();
  }
}

/** Measures memory on a freshly started gateway with an empty event log. */
export async function measureMemory(
  gateway: ServerProcess,
  opts = { streams: 10_000, connections: 20 },
): Promise<MemoryResult> {
  await sleep(2000);
  const idle = rssKiB(gateway.pid);
  note(`memory: idle ${mib(idle).toFixed(1)} MiB; opening ${opts.streams} watch streams…`);

  const perConnection = Math.ceil(opts.streams / opts.connections);
  const sessions: http2.ClientHttp2Session[] = [];
  const streams: http2.ClientHttp2Stream[] = [];
  const gotData = new Set<http2.ClientHttp2Stream>();
  const ended: string[] = [];
  const body = envelope(new Uint8Array(0)); // WatchEventsRequest {}
  let closing = false;
  try {
    for (let c = 0; c < opts.connections; c++) {
      const session = http2.connect(gateway.baseUrl, { peerMaxConcurrentStreams: perConnection + 10 });
      session.on("error", (err) => ended.push(`session: ${err.message}`));
      sessions.push(session);
      await new Promise<void>((resolve, reject) => {
        session.once("connect", () => resolve());
        session.once("error", reject);
      });
      for (let i = 0; i < perConnection && streams.length < opts.streams; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": "/spage.api.SpageAPI/WatchEvents",
          "content-type": "application/grpc",
          te: "trailers",
          ...(gateway.token ? { authorization: `Bearer ${gateway.token}` } : {}),
        });
        stream.on("data", () => gotData.add(stream));
        stream.on("error", (err) => {
          if (!closing) ended.push(err.message);
        });
        stream.on("close", () => {
          if (!closing) ended.push(`stream closed (rst code ${stream.rstCode})`);
        });
        stream.end(body);
        streams.push(stream);
      }
      // Let the server take each batch before the next connection.
      await sleep(50);
    }

    // Every stream is live once each one has received the event of one probe task.
    const deadline = Date.now() + 60_000;
    let gauge = await openWatchers(gateway.baseUrl, gateway.token);
    while (gauge !== undefined && gauge < opts.streams && Date.now() < deadline && ended.length === 0) {
      await sleep(200);
      gauge = await openWatchers(gateway.baseUrl, gateway.token);
    }
    const client = apiClient("grpc", gateway.baseUrl, gateway.token);
    await client.api.submitTask({ taskId: `memory-probe-${Date.now()}`, type: "bench" });
    client.close();
    while (gotData.size < streams.length && Date.now() < deadline && ended.length === 0) await sleep(100);
    check(ended.length === 0, `memory: ${ended.length} watch streams or sessions ended early: ${ended[0]}`);
    check(
      gotData.size === opts.streams,
      `memory: ${gotData.size} of ${opts.streams} watch streams received the probe event`,
    );
    if (gauge !== undefined) {
      check(
        gauge === opts.streams,
        `memory: the gateway reports ${gauge} open watchers, want ${opts.streams}`,
      );
    }
    await sleep(1000);
    const withStreams = rssKiB(gateway.pid);
    note(`memory: ${mib(withStreams).toFixed(1)} MiB with ${gotData.size} streams; closing…`);
    if (opts.streams === 10_000) {
      check(
        withStreams * 1024 < memoryTargetBytes,
        `memory: ${((withStreams * 1024) / 1e6).toFixed(0)} MB resident with 10,000 idle watch streams, target under ${memoryTargetBytes / 1e6} MB`,
      );
    }

    closing = true;
    for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
    for (const s of sessions) s.close();
    const closeBy = Date.now() + 15_000;
    let left = await openWatchers(gateway.baseUrl, gateway.token);
    while (left !== undefined && left > 0 && Date.now() < closeBy) {
      await sleep(200);
      left = await openWatchers(gateway.baseUrl, gateway.token);
    }
    if (left !== undefined)
      check(left === 0, `memory: ${left} watchers still open 15 s after the clients closed`);
    await sleep(1000);
    const afterClose = rssKiB(gateway.pid);
    return {
      idleMiB: mib(idle),
      streams: gotData.size,
      connections: opts.connections,
      withStreamsMiB: mib(withStreams),
      perStreamKiB: (withStreams - idle) / Math.max(1, gotData.size),
      afterCloseMiB: mib(afterClose),
    };
  } finally {
    closing = true;
    for (const s of sessions) s.destroy();
  }
}
