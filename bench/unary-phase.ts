/**
 * The unary phase: two gateways side by side, one with its unary fast path (the default) and one
 * started with `--no-fast-path` (Connect's stock handler serves every call), then the reference
 * peers and the raw floors, all answering the same GetTaskStatus with the fast-path gateway's
 * answer bytes. The two gateways' rows are measured one after the other per protocol and call, so
 * drift on the machine touches both alike.
 */
import { toBinary } from "@bufbuild/protobuf";
import { GetTaskStatusResponseSchema } from "../gen/spage/api/tasks_pb.js";
import { check, note } from "./checks.js";
import { gatewayHasFastPath, type ServerProcess, startGateway, withPeer } from "./gateway.js";
import { apiClient, benchTaskType, type Protocol, protocolLabel, rawRequest } from "./protocols.js";
import { measureUnary, type UnaryRow, type UnaryTarget } from "./unary.js";

/** Server names in the tables. */
export const servers = {
  fastPath: "gateway",
  stock: "gateway, stock Connect",
  grpcJs: "grpc-js peer",
  grpcJsStore: "plain grpc-js server reading the row",
  h1Store: "plain HTTP/1.1 server reading the row",
  connectNode: "connect-node peer",
  h2Floor: "raw HTTP/2 floor",
  h1Floor: "raw HTTP/1.1 floor",
} as const;

/**
 * The servers answering the gateway's GetTaskStatus, and the protocols each is loaded with: from
 * memory, or (`store`) read from the fast-path gateway's own database as the gateway reads it.
 */
const references: readonly {
  name: string;
  script: string;
  protocols: readonly Protocol[];
  store?: boolean;
}[] = [
  { name: servers.grpcJs, script: "bench/peers/grpc-js-peer.ts", protocols: ["grpc"] },
  {
    name: servers.grpcJsStore,
    script: "bench/peers/grpc-js-store-peer.ts",
    protocols: ["grpc"],
    store: true,
  },
  { name: servers.connectNode, script: "bench/peers/connect-node-peer.ts", protocols: ["grpc"] },
  { name: servers.h2Floor, script: "bench/peers/raw-h2-floor.ts", protocols: ["grpc"] },
  {
    name: servers.h1Floor,
    script: "bench/peers/raw-http1-floor.ts",
    protocols: ["grpc-web", "connect-json"],
  },
  {
    name: servers.h1Store,
    script: "bench/peers/http1-store-peer.ts",
    protocols: ["grpc-web", "connect-json"],
    store: true,
  },
];

/** A gateway ready for the unary runs: one task submitted, and its GetTaskStatus answer. */
interface PreparedGateway {
  readonly target: UnaryTarget;
  readonly taskId: string;
  readonly answer: Uint8Array;
  readonly storeKind: string;
}

async function prepare(gw: ServerProcess, server: string, fastPath?: boolean): Promise<PreparedGateway> {
  const client = apiClient("grpc", gw.baseUrl, gw.token);
  try {
    const health = await client.api.healthCheck({});
    const submitted = await client.api.submitTask({
      type: benchTaskType,
      payload: { playbook: "site.yml", inventory: "hosts.ini" },
      metadata: { team: "bench" },
    });
    const answer = await client.api.getTaskStatus({ taskId: submitted.taskId });
    return {
      target: { server, baseUrl: gw.baseUrl, pid: gw.pid, full: true, token: gw.token, fastPath },
      taskId: submitted.taskId,
      answer: toBinary(GetTaskStatusResponseSchema, answer),
      storeKind: health.details.store_kind ?? "unknown",
    };
  } finally {
    client.close();
  }
}

/** The raw HTTP/1.1 body a server sends for GetTaskStatus over `protocol`. */
async function rawBody(baseUrl: string, protocol: Protocol, taskId: string, token: string): Promise<Buffer> {
  const req = rawRequest(protocol, "GetTaskStatus", taskId, token);
  const res = await fetch(`${baseUrl}${req.path}`, { method: "POST", headers: req.headers, body: req.body });
  return Buffer.from(await res.arrayBuffer());
}

/** Checks a floor sends, byte for byte, the body the gateway sends over an HTTP/1.1 protocol. */
async function checkSameBody(gw: PreparedGateway, floor: ServerProcess, protocol: Protocol): Promise<void> {
  const ours = await rawBody(gw.target.baseUrl, protocol, gw.taskId, gw.target.token);
  const theirs = await rawBody(floor.baseUrl, protocol, gw.taskId, "");
  check(
    ours.equals(theirs),
    `${floor.name} ${protocolLabel[protocol]}: its body (${theirs.length} bytes) differs from the gateway's (${ours.length} bytes)`,
  );
}

/**
 * Measures every row of the unary table: GetTaskStatus on both gateways, the peers and floors, then
 * SubmitTask on both gateways. Without a gateway that has `--fast-path` (an older checkout) only
 * its rows are measured, under the fast-path name.
 */
export async function measureUnaryPhase(
  protocols: readonly Protocol[],
): Promise<{ rows: UnaryRow[]; storeKind: string }> {
  const fastGw = await startGateway();
  let stockGw: ServerProcess | undefined;
  try {
    const hasFastPath = gatewayHasFastPath();
    if (hasFastPath) stockGw = await startGateway({ fastPath: false });
    else note("this gateway has no --fast-path flag: no stock Connect rows");
    const fast = await prepare(fastGw, servers.fastPath, hasFastPath ? true : undefined);
    const stock = stockGw ? await prepare(stockGw, servers.stock, false) : undefined;
    const gateways = stock ? [fast, stock] : [fast];
    const rows: UnaryRow[] = [];
    for (const p of protocols) {
      for (const g of gateways) rows.push(await measureUnary(g.target, p, "GetTaskStatus", g.taskId));
    }
    const env = { SPAGE_BENCH_RESPONSE: Buffer.from(fast.answer).toString("base64") };
    for (const ref of references) {
      if (ref.store && !fastGw.dbPath) {
        note(`${ref.name}: this gateway has no --data-dir, so no database file to read`);
        continue;
      }
      const refEnv = ref.store ? { ...env, SPAGE_BENCH_DB: fastGw.dbPath } : env;
      await withPeer(ref.name, ref.script, refEnv, async (server) => {
        const target = { server: ref.name, baseUrl: server.baseUrl, pid: server.pid, full: false, token: "" };
        for (const p of ref.protocols) {
          if (p !== "grpc") await checkSameBody(fast, server, p);
          rows.push(await measureUnary(target, p, "GetTaskStatus", fast.taskId));
        }
      });
    }
    for (const p of protocols) {
      for (const g of gateways) rows.push(await measureUnary(g.target, p, "SubmitTask", g.taskId));
    }
    return { rows, storeKind: fast.storeKind };
  } finally {
    await fastGw.stop();
    await stockGw?.stop();
  }
}
