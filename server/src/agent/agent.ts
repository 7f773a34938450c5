/**
 * The reference daemon: connects to the gateway over native gRPC (SpageAPI.StreamEvents), announces
 * its capacity and labels, runs a real process for every task it is handed, streams the process's
 * output back in numbered chunks, reports the exit code, and stops a process on cancel (SIGTERM,
 * then SIGKILL). It reconnects with backoff and re-attaches the tasks it still runs; output and
 * outcomes are kept until the gateway acknowledges them, so nothing is lost across a reconnect.
 *
 * A task's core is started in the era its task was made for: a play (ExecutePlay, era "play") gets
 * the play-era invocation (`--play-id`, and SPAGE_DAEMON_PLAY_ID in its environment), any other
 * task the task era's. A run ends by its core's
 * own end or by the process's exit code, whichever reaches the gateway first; a report refused
 * because the run had already ended is the normal end of such a run.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { type Event, EventSchema } from "../../../gen/spage/core/common_pb.js";
import { statusName, terminalStates } from "../domain/task-state.js";
import { isTraceparent } from "../tracing/trace-context.js";
import { AsyncQueue } from "./async-queue.js";
import { defaultSpageCommand, renderTemplate } from "./command-template.js";
import { type CoreRelay, startCoreRelay } from "./core-relay.js";
import { OutputBuffer } from "./output-buffer.js";
import { startTaskProcess, type TaskProcess } from "./task-process.js";

/** Which SpageExecution methods a core speaks: the task era's, or today's play era's. */
export type CoreEra = "task" | "play";

/** How an agent runs. */
export interface AgentOptions {
  /** Gateway URL, e.g. http://127.0.0.1:9091. */
  readonly endpoint: string;
  readonly daemonId: string;
  readonly hostname: string;
  readonly version: string;
  readonly capacity: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Shell template replacing the default `spage run` command. */
  readonly command?: string;
  /** Bearer token sent with every call (and to the processes it starts, as SPAGE_TOKEN). */
  readonly token?: string;
  /**
   * CA to trust the gateway by, and a client certificate to authenticate with (mutual TLS), for an
   * https:// endpoint; with a certificate the gateway maps to scope "agent", no token is needed.
   */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** Time between SIGTERM and SIGKILL when a task is stopped. */
  readonly killGraceMs: number;
  /**
   * Cores report through the agent's local relay (core-relay.ts), with the agent's credentials
   * (default); false points them straight at the gateway, where they call without credentials.
   */
  readonly coreRelay?: boolean;
  /**
   * Which SpageExecution era the cores it starts speak: "auto" (default) by each task's era (a
   * play gets the play era), or "task" / "play" for every task.
   */
  readonly coreEra?: "auto" | CoreEra;
  /** How long output lines wait to be sent together. */
  readonly flushMs?: number;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

/** How long, after its process exited, a task's report waits for the relay to pass its core's last calls on. */
const relayQuietMs = 2000;

interface LocalTask {
  readonly id: string;
  readonly output: OutputBuffer;
  proc?: TaskProcess;
  /** Resolves once the process exited and its outcome was handed to the gateway stream. */
  reported?: Promise<void>;
  /** The final report, kept until acknowledged. */
  outcome?: { type: string; data: Record<string, string> };
  stopRequested: boolean;
  flushTimer?: NodeJS.Timeout;
  lastStderr: string;
}

/** The gateway's names of the states a run ends in, as an `error` event's `status` carries them. */
const endedStates: ReadonlySet<string> = new Set([...terminalStates].map(statusName));

/** A running agent. */
export class Agent {
  private readonly tasks = new Map<string, LocalTask>();
  private readonly client: Client<typeof SpageAPI>;
  private readonly sessions: Http2SessionManager;
  private outbox: AsyncQueue<Event> | undefined;
  private stopping = false;
  private abort = new AbortController();
  private eventCounter = 0;
  private readonly endpointHostPort: string;
  private readonly transport: Transport;
  private relay: CoreRelay | undefined;

  constructor(private readonly opts: AgentOptions) {
    const url = new URL(opts.endpoint);
    this.endpointHostPort = `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
    this.sessions = new Http2SessionManager(
      opts.endpoint,
      { pingIntervalMs: 10_000, pingTimeoutMs: 10_000 },
      opts.tls,
    );
    const auth: Interceptor = (next) => (req) => {
      if (opts.token) req.header.set("authorization", `Bearer ${opts.token}`);
      return next(req);
    };
    this.transport = createGrpcTransport({
      baseUrl: opts.endpoint,
      sessionManager: this.sessions,
      interceptors: [auth],
    });
    this.client = createClient(SpageAPI, this.transport);
  }

  /** Where the cores it starts report: the local relay, or the gateway itself. */
  get coreEndpoint(): string {
    return this.relay?.address ?? this.endpointHostPort;
  }

  /**
   * Connects and serves until `stop()`; reconnects with backoff when the stream breaks. Rejects
   * (after stopping) when the gateway refuses the credentials: UNAUTHENTICATED or PERMISSION_DENIED.
   */
  async run(): Promise<void> {
    if (this.opts.coreRelay !== false && !this.relay) {
      this.relay = await startCoreRelay({
        transport: this.transport,
        isAssigned: (taskId) => this.tasks.has(taskId),
        log: this.opts.log,
      });
      this.opts.log("info", "core relay listening", { address: this.relay.address });
    }
    let delay = 200;
    while (!this.stopping) {
      const started = Date.now();
      try {
        await this.session();
      } catch (err) {
        if (this.stopping) break;
        // Refused credentials do not heal by retrying: stop, and let the operator fix --token.
        const code = err instanceof ConnectError ? err.code : undefined;
        if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
          this.opts.log("error", "the gateway refuses this agent's credentials; stopping", {
            err: (err as ConnectError).rawMessage,
          });
          await this.stop();
          throw err;
        }
        this.opts.log("warn", "gateway stream ended", {
          err: err instanceof Error ? err.message : String(err),
        });
      }
      if (this.stopping) break;
      if (Date.now() - started > 10_000) delay = 200;
      const wait = delay * (0.75 + Math.random() * 0.5);
      delay = Math.min(delay * 2, 10_000);
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Stops every task process, reports them, and disconnects. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.tasks.values()) {
      t.stopRequested = true;
      t.proc?.stop(this.opts.killGraceMs);
    }
    await Promise.all([...this.tasks.values()].map((t) => t.reported));
    // Give the last reports a moment to be acknowledged before the stream goes.
    const deadline = Date.now() + 2000;
    while ([...this.tasks.values()].some((t) => t.outcome) && Date.now() < deadline && this.outbox) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.outbox?.end();
    await this.relay?.close();
    this.abort.abort();
    this.sessions.abort();
  }

  /** Ids of the tasks this agent holds (running, or with unacknowledged reports). */
  get taskIds(): string[] {
    return [...this.tasks.keys()];
  }

  private send(type: string, data: Record<string, string>): void {
    this.outbox?.push(
      create(EventSchema, {
        id: `${this.opts.daemonId}-${++this.eventCounter}`,
        type,
        data,
        timestamp: timestampNow(),
      }),
    );
  }

  private async session(): Promise<void> {
    const outbox = new AsyncQueue<Event>();
    this.abort = new AbortController();
    // Nothing but the hello goes out before the welcome: the resends in welcomed() must come
    // first, in order, or the gateway would drop older output chunks as repeats.
    let heartbeat: NodeJS.Timeout | undefined;
    outbox.push(
      create(EventSchema, {
        id: `${this.opts.daemonId}-${++this.eventCounter}`,
        type: "daemon.hello",
        timestamp: timestampNow(),
        data: {
          daemon_id: this.opts.daemonId,
          hostname: this.opts.hostname,
          version: this.opts.version,
          capacity: String(this.opts.capacity),
          labels: Object.entries(this.opts.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(","),
          running: this.taskIds.join(","),
        },
      }),
    );
    try {
      for await (const ev of this.client.streamEvents(outbox, { signal: this.abort.signal })) {
        if (ev.type === "daemon.welcome") {
          const every = Math.max(50, Number(ev.data.heartbeat_ms ?? "5000"));
          if (heartbeat) clearInterval(heartbeat);
          heartbeat = setInterval(() => this.send("daemon.heartbeat", {}), every);
          this.outbox = outbox;
          this.welcomed(ev);
          continue;
        }
        this.onEvent(ev);
      }
    } finally {
      if (heartbeat) clearInterval(heartbeat);
      outbox.end();
      if (this.outbox === outbox) this.outbox = undefined;
    }
  }

  private welcomed(ev: Event): void {
    const list = (key: string) => new Set((ev.data[key] ?? "").split(",").filter(Boolean));
    const reattached = list("reattached");
    const cancel = list("cancel");
    this.opts.log("info", "connected to the gateway", {
      daemon: this.opts.daemonId,
      reattached: reattached.size,
      cancel: cancel.size,
    });
    for (const t of [...this.tasks.values()]) {
      if (reattached.has(t.id)) {
        // Resend what the gateway may not have: unacknowledged output, then the outcome.
        for (const c of t.output.pendingChunks()) this.sendChunk(t.id, c);
        if (t.outcome) this.send(t.outcome.type, t.outcome.data);
        continue;
      }
      // The gateway settled this task while we were away (or gave it to another daemon): stop it.
      t.stopRequested = true;
      t.proc?.stop(this.opts.killGraceMs);
      if (!t.proc || t.outcome) this.drop(t);
    }
  }

  private onEvent(ev: Event): void {
    const taskId = ev.data.task_id ?? "";
    switch (ev.type) {
      case "task.assigned":
        this.assigned(ev);
        return;
      case "task.cancel": {
        const t = this.tasks.get(taskId);
        if (!t) return;
        t.stopRequested = true;
        if (t.proc) t.proc.stop(this.opts.killGraceMs);
        else this.finish(t, { type: "task.canceled", data: { task_id: t.id } });
        return;
      }
      case "ack": {
        const t = this.tasks.get(taskId);
        if (!t) return;
        if (ev.data.of === "task.output") t.output.ack(Number(ev.data.seq ?? "0"));
        if (ev.data.of === t.outcome?.type) this.drop(t);
        return;
      }
      case "error": {
        const t = this.tasks.get(taskId);
        if (t?.outcome && ev.data.of === t.outcome.type && ev.data.code === "failed_precondition") {
          if (ev.data.status && endedStates.has(ev.data.status)) {
            // The run ended before the process did (its core ended it, e.g. a play's own
            // COMPLETED): the first end stands, and this task is done here.
            this.opts.log("info", "the run had already ended; the gateway keeps that end", {
              task: t.id,
              status: ev.data.status,
              reported: t.outcome.type,
              message: ev.data.message,
            });
            this.drop(t);
            return;
          }
        }
        this.opts.log("warn", "the gateway refused an event", { ...ev.data });
        // A report the gateway will never take (the task is not ours any more): forget the task.
        // A refused output chunk alone is no reason to stop a process.
        if (
          t &&
          ev.data.of !== "task.output" &&
          (ev.data.code === "failed_precondition" || ev.data.code === "not_found")
        ) {
          t.stopRequested = true;
          t.proc?.stop(this.opts.killGraceMs);
          if (!t.proc || t.outcome) this.drop(t);
        }
        return;
      }
      default:
        return;
    }
  }

  private assigned(ev: Event): void {
    const d = ev.data;
    const id = d.task_id ?? "";
    if (!id || this.tasks.has(id)) return;
    if (this.tasks.size >= this.opts.capacity || this.stopping) {
      this.send("task.rejected", {
        task_id: id,
        reason: this.stopping ? "agent is stopping" : "agent is full",
      });
      return;
    }
    const t: LocalTask = { id, output: new OutputBuffer(), stopRequested: false, lastStderr: "" };
    this.tasks.set(id, t);
    this.send("task.accepted", { task_id: id });
    const forced = this.opts.coreEra ?? "auto";
    const era: CoreEra = forced !== "auto" ? forced : d.era === "play" ? "play" : "task";
    let command: string;
    try {
      const values = {
        taskId: id,
        playbook: d.playbook ?? "",
        inventory: d.inventory ?? "",
        variablesJson: d.variables || "{}",
        endpoint: this.coreEndpoint,
        limit: d.limit ?? "",
      };
      command = this.opts.command
        ? renderTemplate(this.opts.command, values)
        : defaultSpageCommand(values, era);
    } catch (err) {
      this.finish(t, {
        type: "task.failed",
        data: { task_id: id, exit_code: "127", error: err instanceof Error ? err.message : String(err) },
      });
      return;
    }
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SPAGE_TASK_ID: id,
      SPAGE_GATEWAY: this.endpointHostPort,
      SPAGE_GATEWAY_URL: this.opts.endpoint,
      // The hosts a retry of failed hosts is limited to (also --limit / {limit}).
      ...(d.limit ? { SPAGE_LIMIT: d.limit } : {}),
      ...(this.opts.token ? { SPAGE_TOKEN: this.opts.token } : {}),
      // The trace of the submit that made the task (W3C Trace Context, the de-facto variable
      // name): a traced process continues the trace from the browser click that started it.
      ...(isTraceparent(d.traceparent) ? { TRACEPARENT: d.traceparent } : {}),
    };
    // A trace context the agent itself was started with belongs to another trace, never the task's.
    if (!isTraceparent(d.traceparent)) delete env.TRACEPARENT;
    delete env.TRACESTATE;
    // Also in the environment, for templates and configurations that read the play id from there
    // (Spage's own config key is daemon.play_id); its --play-id and --daemon-grpc flags win.
    if (era === "play") {
      env.SPAGE_DAEMON_PLAY_ID = id;
      env.SPAGE_DAEMON_ENDPOINT = this.coreEndpoint;
    }
    const proc = startTaskProcess(command, env, (stream, line) => this.line(t, stream, line));
    t.proc = proc;
    this.send("task.started", { task_id: id, pid: String(proc.pid) });
    this.opts.log("info", "task started", { task: id, pid: proc.pid, era, command });
    t.reported = proc.exited.then(async (exit) => {
      this.flushOutput(t);
      // What the core sent before it exited goes first: its own end of the run, if it sent one,
      // reaches the gateway before the exit code.
      await this.relay?.quiet(id, relayQuietMs);
      if (exit.stopped || t.stopRequested) {
        this.finish(t, { type: "task.canceled", data: { task_id: id, exit_code: String(exit.exitCode) } });
      } else if (exit.exitCode === 0) {
        this.finish(t, { type: "task.completed", data: { task_id: id, exit_code: "0" } });
      } else {
        this.finish(t, {
          type: "task.failed",
          data: {
            task_id: id,
            exit_code: String(exit.exitCode),
            error: t.lastStderr || `exit code ${exit.exitCode}`,
          },
        });
      }
      this.opts.log("info", "task ended", { task: id, exitCode: exit.exitCode, stopped: exit.stopped });
    });
  }

  private line(t: LocalTask, stream: "stdout" | "stderr", line: string): void {
    if (stream === "stderr" && line.trim() !== "") t.lastStderr = line.slice(0, 1024);
    for (const c of t.output.add(stream, line)) this.sendChunk(t.id, c);
    t.flushTimer ??= setTimeout(() => {
      t.flushTimer = undefined;
      this.flushOutput(t);
    }, this.opts.flushMs ?? 50);
  }

  private flushOutput(t: LocalTask): void {
    if (t.flushTimer) clearTimeout(t.flushTimer);
    t.flushTimer = undefined;
    for (const c of t.output.flush()) this.sendChunk(t.id, c);
  }

  private sendChunk(taskId: string, c: { seq: number; stream: string; text: string }): void {
    this.send("task.output", { task_id: taskId, seq: String(c.seq), stream: c.stream, line: c.text });
  }

  private finish(t: LocalTask, outcome: { type: string; data: Record<string, string> }): void {
    t.outcome = outcome;
    this.send(outcome.type, outcome.data);
  }

  private drop(t: LocalTask): void {
    if (t.flushTimer) clearTimeout(t.flushTimer);
    this.tasks.delete(t.id);
  }
}
