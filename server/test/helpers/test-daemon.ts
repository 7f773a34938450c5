/**
 * A scriptable daemon for tests: opens SpageAPI.StreamEvents over native gRPC (connect-node, h2c),
 * introduces itself with daemon.hello, and then sends whatever the test asks for (`send`), logging
 * everything the gateway sends back. `waitFor` / `reply` wait for a received event under a deadline
 * and fail with a listing of what did arrive. Optional automatic heartbeats keep its lease.
 *
 * Also here: small polling helpers for task state (`waitForTask`) and the stored event log
 * (`storedEvents`), always under a deadline.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI, type SubmitTaskRequestSchema } from "../../../gen/spage/api/tasks_pb.js";
import { type Event, EventSchema, type Task, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import type { GatewayStore } from "../../src/store/gateway-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { describeEvents, gatewayClients, watchUntil } from "./event-watch.js";
import { startTestServer, type TestServer } from "./test-server.js";

/** What a test daemon announces in its daemon.hello. */
export interface TestDaemonOptions {
  readonly daemonId: string;
  /** Announced capacity; omitted from the hello when undefined (the gateway's default is 1). */
  readonly capacity?: number;
  /** Labels as the hello carries them, "k=v,k=v". */
  readonly labels?: string;
  /** Ids of tasks the daemon says it still runs (re-attach after a reconnect). */
  readonly running?: readonly string[];
  readonly hostname?: string;
  readonly version?: string;
  /** Sends daemon.heartbeat every this many ms; none when 0 or undefined. */
  readonly heartbeatMs?: number;
  /** Sends daemon.hello and waits for daemon.welcome (default true). */
  readonly hello?: boolean;
  /** How long `connect` waits for the welcome (default 2000 ms). */
  readonly welcomeTimeoutMs?: number;
  /** Sent as `Authorization: Bearer <token>` (an API key or session token), for a gateway with auth on. */
  readonly token?: string;
}

/** How the gateway's side of the stream ended. */
export interface StreamEnd {
  /** Undefined when the stream ended normally (OK status). */
  readonly error?: ConnectError;
}

interface Waiter {
  readonly match: (ev: Event) => boolean;
  readonly resolve: (ev: Event) => void;
  readonly reject: (err: Error) => void;
  readonly what: string;
}

let connections = 0;

/** One daemon stream. A reconnect is a new TestDaemon with the same id. */
export class TestDaemon {
  /** Everything the gateway sent on this stream, in order. */
  readonly received: Event[] = [];
  /** The daemon.welcome (after `connect` with hello). */
  welcome: Event | undefined;
  /** Settles when the gateway's side of the stream ends; never rejects. */
  readonly ended: Promise<StreamEnd>;
  private readonly api: Client<typeof SpageAPI>;
  private readonly sessionManager: Http2SessionManager;
  private readonly abortController = new AbortController();
  private readonly outbound: Event[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<(ev: Event) => void>();
  private readonly conn = ++connections;
  private wakeOutbound: (() => void) | undefined;
  private requestClosed = false;
  private endedWith: StreamEnd | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private nextId = 0;

  private constructor(
    baseUrl: string,
    readonly options: TestDaemonOptions,
  ) {
    this.sessionManager = new Http2SessionManager(baseUrl);
    const token = options.token;
    this.api = createClient(
      SpageAPI,
      createGrpcTransport({
        baseUrl,
        sessionManager: this.sessionManager,
        interceptors: token
          ? [
              (next) => (req) => {
                req.header.set("authorization", `Bearer ${token}`);
                return next(req);
              },
            ]
          : [],
      }),
    );
    this.ended = this.read();
  }

  /** Opens a stream, sends daemon.hello and waits for daemon.welcome (unless `hello: false`). */
  static async connect(baseUrl: string, options: TestDaemonOptions): Promise<TestDaemon> {
    const d = new TestDaemon(baseUrl, options);
    if (options.hello === false) return d;
    try {
      const data: Record<string, string> = { daemon_id: options.daemonId };
      if (options.capacity !== undefined) data.capacity = String(options.capacity);
      if (options.labels !== undefined) data.labels = options.labels;
      if (options.running !== undefined) data.running = options.running.join(",");
      data.hostname = options.hostname ?? `host-${options.daemonId}`;
      data.version = options.version ?? "test-daemon/1";
      const ref = d.send("daemon.hello", data);
      const answer = await d.waitMatching(
        (e) => e.data.ref === ref,
        "daemon.welcome, the answer to its daemon.hello",
        options.welcomeTimeoutMs ?? 2000,
      );
      if (answer.type !== "daemon.welcome") {
        throw new Error(
          `daemon ${options.daemonId}: hello answered with ${answer.type} ${JSON.stringify(answer.data)}`,
        );
      }
      d.welcome = answer;
    } catch (err) {
      d.close();
      throw err;
    }
    if (options.heartbeatMs) d.startHeartbeats(options.heartbeatMs);
    return d;
  }

  get id(): string {
    return this.options.daemonId;
  }

  /** Whether the gateway's side of the stream has ended. */
  get isEnded(): boolean {
    return this.endedWith !== undefined;
  }

  /** Queues an event to the gateway; returns its id (chosen here, unique per test process). */
  send(type: string, data: Record<string, string> = {}, id?: string): string {
    if (this.requestClosed)
      throw new Error(`daemon ${this.id}: cannot send ${type}, the request stream is closed`);
    const eventId = id ?? `${this.id}.c${this.conn}.${++this.nextId}`;
    this.outbound.push(create(EventSchema, { id: eventId, type, data, timestamp: timestampNow() }));
    this.wakeOutbound?.();
    return eventId;
  }

  /** Sends an event and waits for the gateway's answer to it (ack or error). */
  async call(type: string, data: Record<string, string> = {}, timeoutMs = 5000): Promise<Event> {
    return this.reply(this.send(type, data), timeoutMs);
  }

  /** Sends an event and fails unless the gateway acknowledges it. */
  async ack(type: string, data: Record<string, string> = {}, timeoutMs = 5000): Promise<Event> {
    const answer = await this.call(type, data, timeoutMs);
    if (answer.type !== "ack") {
      throw new Error(
        `daemon ${this.id}: ${type} ${JSON.stringify(data)} answered with ${answer.type} ${JSON.stringify(answer.data)}`,
      );
    }
    return answer;
  }

  /** Waits for the gateway's answer (an event whose data.ref is `ref`). */
  reply(ref: string, timeoutMs = 5000): Promise<Event> {
    return this.waitMatching((e) => e.data.ref === ref, `the answer to ${ref}`, timeoutMs);
  }

  /**
   * Resolves with the first received event (already logged or yet to come) of `type` that
   * satisfies `predicate`; rejects after `timeoutMs`, or when the stream ends first, with a listing
   * of what was received.
   */
  waitFor(type: string, predicate: (ev: Event) => boolean = () => true, timeoutMs = 5000): Promise<Event> {
    return this.waitMatching((e) => e.type === type && predicate(e), `a ${type} event`, timeoutMs);
  }

  /** The received events of `type` (optionally about `taskId`). */
  eventsOf(type: string, taskId?: string): Event[] {
    return this.received.filter(
      (e) => e.type === type && (taskId === undefined || e.data.task_id === taskId),
    );
  }

  /** Calls `listener` for every event received from now on (with `replay`, first for those logged). */
  onEvent(listener: (ev: Event) => void, replay = false): () => void {
    if (replay) for (const ev of this.received) listener(ev);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sends daemon.heartbeat every `everyMs` until the stream is closed. */
  startHeartbeats(everyMs: number): void {
    this.stopHeartbeats();
    this.heartbeat = setInterval(() => {
      if (!this.requestClosed) this.send("daemon.heartbeat");
    }, everyMs);
    this.heartbeat.unref();
  }

  stopHeartbeats(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Ends the request stream (a clean goodbye); the gateway then ends its side. */
  halfClose(): void {
    this.stopHeartbeats();
    this.requestClosed = true;
    this.wakeOutbound?.();
  }

  /** Cancels the call (the daemon vanishes: RST_STREAM); the HTTP/2 connection stays. */
  abort(): void {
    this.stopHeartbeats();
    this.requestClosed = true;
    this.wakeOutbound?.();
    this.abortController.abort();
  }

  /** Cancels the call if still open and closes the HTTP/2 connection. Safe to call twice. */
  close(): void {
    this.abort();
    this.sessionManager.abort();
  }

  /** One line per received event, heartbeat acks summarised. */
  describe(): string {
    const beats = this.received.filter((e) => e.type === "ack" && e.data.of === "daemon.heartbeat").length;
    const rest = this.received.filter((e) => !(e.type === "ack" && e.data.of === "daemon.heartbeat"));
    const end = this.endedWith
      ? `\n(stream ended: ${this.endedWith.error ? this.endedWith.error.message : "OK"})`
      : "";
    return `${describeEvents(rest) || "(nothing)"}${beats ? `\n(+${beats} heartbeat acks)` : ""}${end}`;
  }

  private waitMatching(match: (ev: Event) => boolean, what: string, timeoutMs: number): Promise<Event> {
    const found = this.received.find(match);
    if (found) return Promise.resolve(found);
    if (this.endedWith) return Promise.reject(this.failure(`${what}: the stream ended first`));
    return new Promise<Event>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(this.failure(`${what}: nothing within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        what,
        resolve: (ev) => {
          clearTimeout(timer);
          resolve(ev);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.add(waiter);
    });
  }

  private failure(message: string): Error {
    return new Error(
      `daemon ${this.id} (stream ${this.conn}) waited for ${message}; received:\n${this.describe()}`,
    );
  }

  private async *requests(): AsyncGenerator<Event> {
    for (;;) {
      const ev = this.outbound.shift();
      if (ev) {
        yield ev;
        continue;
      }
      if (this.requestClosed) return;
      await new Promise<void>((resolve) => {
        this.wakeOutbound = resolve;
      });
      this.wakeOutbound = undefined;
    }
  }

  private async read(): Promise<StreamEnd> {
    let end: StreamEnd = {};
    try {
      for await (const ev of this.api.streamEvents(this.requests(), {
        signal: this.abortController.signal,
      })) {
        this.received.push(ev);
        for (const l of this.listeners) l(ev);
        for (const w of [...this.waiters]) {
          if (!w.match(ev)) continue;
          this.waiters.delete(w);
          w.resolve(ev);
        }
      }
    } catch (err) {
      end = { error: ConnectError.from(err) };
    }
    this.endedWith = end;
    this.stopHeartbeats();
    for (const w of [...this.waiters]) {
      this.waiters.delete(w);
      w.reject(this.failure(`${w.what}: the stream ended first`));
    }
    return end;
  }
}

/** Connects daemons and closes them all at the end of a test. */
export class DaemonPool {
  private readonly daemons: TestDaemon[] = [];

  constructor(private readonly baseUrl: string) {}

  async connect(options: TestDaemonOptions): Promise<TestDaemon> {
    const d = await TestDaemon.connect(this.baseUrl, options);
    this.daemons.push(d);
    return d;
  }

  /** Closes every daemon and waits for their streams to end. */
  async closeAll(): Promise<void> {
    for (const d of this.daemons) d.close();
    await Promise.all(this.daemons.map((d) => d.ended));
    this.daemons.length = 0;
  }
}

/** The short name of a status, e.g. RUNNING. */
export function statusOf(status: TaskStatus | undefined): string {
  return status === undefined ? "(none)" : (TaskStatus[status] ?? String(status));
}

/**
 * Polls GetTaskStatus until `until(task)` holds; fails after `timeoutMs` naming the last state and
 * listing the task's stored events.
 */
export async function waitForTask(
  api: Client<typeof SpageAPI>,
  taskId: string,
  until: TaskStatus | ((task: Task) => boolean),
  timeoutMs = 5000,
): Promise<Task> {
  const ok = typeof until === "function" ? until : (t: Task) => t.status === until;
  const deadline = Date.now() + timeoutMs;
  let last: Task | undefined;
  for (;;) {
    last = (await api.getTaskStatus({ taskId })).task;
    if (last && ok(last)) return last;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const want = typeof until === "function" ? "the expected state" : statusOf(until);
  const events = await storedEvents(api, taskId).catch((err: unknown) => `(events unavailable: ${err})`);
  throw new Error(
    `task ${taskId} did not reach ${want} within ${timeoutMs} ms; it is ${statusOf(last?.status)} (error "${last?.error ?? ""}"); its events:\n${
      typeof events === "string" ? events : describeEvents(events)
    }`,
  );
}

/**
 * Every stored event up to now (optionally only those of `taskId`), read with WatchEvents up to the
 * log position a ListTasks call reports.
 */
export async function storedEvents(api: Client<typeof SpageAPI>, taskId?: string): Promise<Event[]> {
  const upTo = (await api.listTasks({ limit: 1 })).sequence;
  if (upTo === 0n) return [];
  const all = await watchUntil(
    api,
    { afterSequence: 0n },
    (events) => (events[events.length - 1]?.sequence ?? 0n) >= upTo,
  );
  return taskId === undefined ? all : all.filter((e) => e.taskId === taskId);
}

/** The from->to of a task's stored task.status events, in order. */
export async function transitions(env: GatewayEnv, taskId: string): Promise<string[]> {
  const events = await storedEvents(env.api, taskId);
  return events.filter((e) => e.type === "task.status").map((e) => `${e.data.from}->${e.data.to}`);
}

/** Submits a task and returns its id. */
export async function submit(
  api: Client<typeof SpageAPI>,
  req: MessageInitShape<typeof SubmitTaskRequestSchema>,
): Promise<string> {
  const res = await api.submitTask({ type: "playbook", ...req });
  if (!res.success) throw new Error(`submit failed: ${JSON.stringify(res.error)}`);
  return res.taskId;
}

/** A gateway started for one test, with an API client and a pool of test daemons. */
export interface GatewayEnv {
  readonly server: TestServer;
  readonly url: string;
  readonly api: Client<typeof SpageAPI>;
  readonly daemons: DaemonPool;
}

/**
 * Flags for fast graces and sweeps. The lease is 2 s rather than shorter: the gateway starts a
 * daemon's lease before its hello is stored (see the slow-hello test), so a short lease turns a slow
 * fsync on a busy machine into a dropped stream. Tests of the lease itself pass a shorter one.
 */
export const fastTimings: readonly string[] = [
  "--lease-ms",
  "2000",
  "--lost-grace-ms",
  "600",
  "--cancel-grace-ms",
  "600",
  "--heartbeat-ms",
  "100",
  "--sweep-interval-ms",
  "50",
  "--dispatch-poll-ms",
  "100",
];

/**
 * Runs `body` against a fresh gateway (its own database) started with `args`, then closes every
 * daemon and client and the gateway, which fails the test if a stream or connection leaked.
 * `wrapStore` may wrap the gateway's SQLite store (e.g. to slow a method down).
 */
export async function withGateway(
  args: readonly string[],
  body: (env: GatewayEnv) => Promise<void>,
  opts: { wrapStore?: (store: GatewayStore) => GatewayStore } = {},
): Promise<void> {
  const dir = opts.wrapStore ? mkdtempSync(join(tmpdir(), "spage-dispatch-")) : undefined;
  const store =
    opts.wrapStore && dir ? opts.wrapStore(openSqliteStore({ path: join(dir, "spage.db") })) : undefined;
  const server = await startTestServer(args, store ? { store } : {});
  const clients = gatewayClients(server.url);
  const daemons = new DaemonPool(server.url);
  let failed = false;
  try {
    await body({ server, url: server.url, api: clients.api, daemons });
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await daemons.closeAll();
    clients.close();
    // A failing body may leave things half open; do not hide its error behind the leak check.
    await server
      .close()
      .catch((err: unknown) => {
        if (!failed) throw err;
      })
      .finally(() => {
        if (dir) rmSync(dir, { recursive: true, force: true });
      });
  }
}

/** `store` with `method` delayed by `delayMs` before it runs. */
export function slowStore(store: GatewayStore, method: keyof GatewayStore, delayMs: number): GatewayStore {
  return new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key !== method || typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        await new Promise((r) => setTimeout(r, delayMs));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
