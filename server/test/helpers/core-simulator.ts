/**
 * A stand-in for a real Spage core, behaving on the wire exactly as the contract describes one
 * (docs/spage-contract.md, "How a real Spage core behaves on the wire"):
 *
 * - native gRPC over plaintext h2c with @grpc/grpc-js, no credentials and no metadata; messages are
 *   encoded by protobuf-es (toBinary/fromBinary) from the generated schemas;
 * - RegisterTask twice for one run: first in full (playbook, inventory, string variables, engine,
 *   metadata {playbook, inventory, engine}), then with only task_id and playbook;
 * - one StreamProgress, opened lazily with the first update, carrying per Ansible task and host a
 *   start update and a done update (progress 100, or -1 when it failed), or a skipped update;
 *   `task_id` is always the id of the whole run;
 * - whatever the server streams back is read and ignored (only counted);
 * - on exit the stream is cancelled (RST_STREAM CANCEL), never half-closed.
 *
 * `finishRun` and `halfClose` go beyond a real core: they are a "core-like runner" that marks the
 * end of the run with `run_status` in an update's metadata, as the gateway's contract allows, or
 * ends its stream politely.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { type ProgressUpdate, ProgressUpdateSchema } from "../../../gen/spage/core/common_pb.js";
import {
  RegisterTaskRequestSchema,
  type RegisterTaskResponse,
  RegisterTaskResponseSchema,
} from "../../../gen/spage/core/execution_pb.js";

/** What one Ansible task did on one host. */
export type StepOutcome = "ok" | "skipped" | { readonly failed: string };

/** One Ansible task of the plan and its outcome per host, in host order. */
export interface PlanTask {
  readonly name: string;
  readonly hosts: Readonly<Record<string, StepOutcome>>;
}

/** The fields of one progress update as the core builds it. */
export interface CoreUpdate {
  readonly progress: number;
  readonly message: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** How the run is registered. */
export interface CoreRun {
  readonly taskId: string;
  readonly playbook: string;
  readonly inventory: string;
  readonly variables: Readonly<Record<string, string>>;
  readonly engine: string;
}

/** How the progress stream ended, as the core saw it. */
export interface StreamEnd {
  readonly code: grpc.status;
  readonly details: string;
}

/** Options of the simulator. */
export interface CoreSimulatorOptions {
  /** `host:port` of the gateway (a real core's `--daemon-grpc`). */
  readonly target: string;
  readonly run: CoreRun;
  /** Deadline of each unary call (a real core uses 30 s). */
  readonly callTimeoutMs?: number;
  /**
   * Deadline of the progress stream. A real core has none; the simulator has one so a test can
   * never hang on it. It must be longer than the test needs the stream.
   */
  readonly streamTimeoutMs?: number;
}

const registerPath = "/spage.core.SpageExecution/RegisterTask";
const progressPath = "/spage.core.SpageExecution/StreamProgress";

const serializer =
  <D extends DescMessage>(schema: D) =>
  (m: MessageShape<D>): Buffer =>
    Buffer.from(toBinary(schema, m));
const deserializer =
  <D extends DescMessage>(schema: D) =>
  (b: Buffer): MessageShape<D> =>
    fromBinary(schema, b);

/** Fixed stand-ins for the memory and goroutine figures a real core adds to every done update. */
function resourceFigures(n: number): Record<string, string> {
  return {
    memory_alloc_mb: (3.5 + n / 10).toFixed(2),
    memory_total_mb: (12 + n).toFixed(2),
    memory_heap_mb: (3.5 + n / 10).toFixed(2),
    memory_sys_mb: "18.27",
    memory_heap_sys_mb: "11.53",
    gc_cycles: String(2 + n),
    goroutines: String(9 + (n % 3)),
    cpu_count: "4",
  };
}

/** The start update of `task` on `host`. */
export function startUpdate(task: string, host: string): CoreUpdate {
  return {
    progress: 0,
    message: `Executing task: ${task} on ${host}`,
    metadata: { task, host, level: "0", status: "running" },
  };
}

/** The done update of `task` on `host`: progress 100, or -1 with the error when it failed. */
export function doneUpdate(task: string, host: string, error: string, n: number): CoreUpdate {
  const failed = error !== "";
  const status = failed ? "failed" : "completed";
  const durationNs = 1_250_000 * (n + 1) + 37;
  return {
    progress: failed ? -1 : 100,
    message: `Task ${task} ${status} on ${host}`,
    metadata: {
      task,
      host,
      level: "-1",
      status,
      duration_ms: (durationNs / 1e6).toFixed(2),
      duration_ns: String(durationNs),
      error,
      ...resourceFigures(n),
    },
  };
}

/**
 * An error report of the run itself, as a core sends it when a level of the playbook fails outside
 * any host's task: progress -1, no host.
 */
export function errorReport(level: number, error: string): CoreUpdate {
  return {
    progress: -1,
    message: `Error in level ${level}: ${error}`,
    metadata: { level: String(level), error, status: "failed" },
  };
}

/** The skipped update of `task` on `host`. */
export function skippedUpdate(task: string, host: string): CoreUpdate {
  return {
    progress: 0,
    message: `Task ${task} skipped on ${host}`,
    metadata: { task, host, level: "0", status: "skipped" },
  };
}

/**
 * The updates a core sends for a plan, in order: per Ansible task, the start updates of every host
 * that runs it (hosts run in parallel), then each host's done or skipped update.
 */
export function planUpdates(plan: readonly PlanTask[]): CoreUpdate[] {
  const out: CoreUpdate[] = [];
  let n = 0;
  for (const task of plan) {
    const hosts = Object.entries(task.hosts);
    for (const [host, outcome] of hosts) {
      if (outcome !== "skipped") out.push(startUpdate(task.name, host));
    }
    for (const [host, outcome] of hosts) {
      if (outcome === "skipped") out.push(skippedUpdate(task.name, host));
      else out.push(doneUpdate(task.name, host, outcome === "ok" ? "" : outcome.failed, n++));
    }
  }
  return out;
}

/** A simulated Spage core for one run. */
export class CoreSimulator {
  /** Every update written to the progress stream, in order. */
  readonly sent: ProgressUpdate[] = [];
  /** The replies the server streamed back, in order (a real core prints them). */
  readonly received: ProgressUpdate[] = [];
  private readonly client: grpc.Client;
  private stream: grpc.ClientDuplexStream<ProgressUpdate, ProgressUpdate> | undefined;
  private ended: Promise<StreamEnd> | undefined;
  private replies = 0;
  private readonly writes: Promise<void>[] = [];
  private readonly replyWaiters = new Set<() => void>();

  constructor(private readonly opts: CoreSimulatorOptions) {
    // No retry buffer: grpc-js then calls a write's callback only once the message has been handed
    // to the HTTP/2 stream, so `flushed()` means "on the wire". Nothing of this shows on the wire.
    this.client = new grpc.Client(opts.target, grpc.credentials.createInsecure(), {
      "grpc.per_rpc_retry_buffer_size": 0,
    });
  }

  /** Number of messages the server streamed back (read, counted and otherwise ignored). */
  get repliesRead(): number {
    return this.replies;
  }

  /** Registers the run twice, as a real core does: in full, then with only the playbook. */
  async register(): Promise<RegisterTaskResponse[]> {
    const { run } = this.opts;
    const full = await this.registerTask({
      taskId: run.taskId,
      playbook: run.playbook,
      inventory: run.inventory,
      variables: { ...run.variables },
      engine: run.engine,
      metadata: { playbook: run.playbook, inventory: run.inventory, engine: run.engine },
    });
    const thin = await this.registerTask({ taskId: run.taskId, playbook: run.playbook });
    return [full, thin];
  }

  /** Sends every update of `plan` (see `planUpdates`). */
  runPlan(plan: readonly PlanTask[]): void {
    for (const u of planUpdates(plan)) this.send(u);
  }

  /**
   * Marks the end of the run the way the gateway's contract allows a runner to (a real core does
   * not): an update with `run_status` and `exit_code` in its metadata.
   */
  finishRun(status: "completed" | "failed", exitCode: number, error = ""): void {
    this.send({
      progress: status === "completed" ? 100 : -1,
      message: `Playbook ${this.opts.run.playbook} ${status}`,
      metadata: { run_status: status, exit_code: String(exitCode), ...(error ? { error } : {}) },
    });
  }

  /** Writes one update, opening the progress stream first if this is the first one. */
  send(u: CoreUpdate): void {
    const update = create(ProgressUpdateSchema, {
      taskId: this.opts.run.taskId,
      progress: u.progress,
      message: u.message,
      metadata: { ...u.metadata },
      timestamp: timestampNow(),
    });
    this.sent.push(update);
    const stream = this.openStream();
    // The callback also runs (with an error) when the write fails: a failed write is not waited on.
    this.writes.push(new Promise((resolve) => stream.write(update, () => resolve())));
  }

  /** Resolves once every update sent so far has been written to the connection. */
  async flushed(): Promise<void> {
    await Promise.all(this.writes);
  }

  /**
   * Resolves once the server has streamed back at least `n` messages. Stands in for the time a real
   * run takes between its last update and its exit; the replies' contents are never looked at.
   */
  waitForReplies(n: number, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.replies < n) return false;
        this.replyWaiters.delete(check);
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.replyWaiters.delete(check);
        reject(new Error(`core read ${this.replies} of ${n} replies within ${timeoutMs} ms`));
      }, timeoutMs);
      this.replyWaiters.add(check);
      check();
    });
  }

  /**
   * Exits as a real core does: cancels the progress stream (never half-closes it) as soon as every
   * update it sent is on the wire, without waiting for any answer, then closes the channel.
   * Resolves with how the stream ended on the core's side (CANCELLED after a cancel).
   */
  async exit(): Promise<StreamEnd | undefined> {
    let end: StreamEnd | undefined;
    if (this.stream && this.ended) {
      await this.flushed();
      this.stream.cancel();
      end = await this.ended;
    }
    this.client.close();
    return end;
  }

  /**
   * Ends the progress stream by half-closing it (END_STREAM) once every update is on the wire, as a
   * runner that finishes politely does (a real core cancels instead), and waits for the server to
   * end its side. Resolves with how the stream ended.
   */
  async halfClose(): Promise<StreamEnd | undefined> {
    if (!this.stream || !this.ended) return undefined;
    await this.flushed();
    this.stream.end();
    return this.ended;
  }

  private openStream(): grpc.ClientDuplexStream<ProgressUpdate, ProgressUpdate> {
    if (this.stream) return this.stream;
    const stream = this.client.makeBidiStreamRequest(
      progressPath,
      serializer(ProgressUpdateSchema),
      deserializer(ProgressUpdateSchema),
      { deadline: Date.now() + (this.opts.streamTimeoutMs ?? 60_000) },
    );
    stream.on("data", (reply: ProgressUpdate) => {
      // A real core prints what comes back and attaches no meaning to it.
      this.received.push(reply);
      this.replies++;
      for (const w of [...this.replyWaiters]) w();
    });
    // grpc-js emits 'error' for every non-OK status (CANCELLED included); 'status' always follows.
    stream.on("error", () => {});
    this.ended = new Promise((resolve) => {
      stream.once("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
    });
    this.stream = stream;
    return stream;
  }

  private registerTask(req: MessageInitShape<typeof RegisterTaskRequestSchema>) {
    const msg = create(RegisterTaskRequestSchema, req);
    return new Promise<RegisterTaskResponse>((resolve, reject) => {
      this.client.makeUnaryRequest(
        registerPath,
        serializer(RegisterTaskRequestSchema),
        deserializer(RegisterTaskResponseSchema),
        msg,
        { deadline: Date.now() + (this.opts.callTimeoutMs ?? 30_000) },
        (err, res) => (err || !res ? reject(err ?? new Error("no response")) : resolve(res)),
      );
    });
  }
}
