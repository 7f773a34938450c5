/**
 * A stand-in for a Spage core of today (the play era), from the contract doc's facts ("The current
 * upstream contract"): native gRPC over plaintext h2c with @grpc/grpc-js, no credentials, messages
 * defined by upstream's own proto (fixtures/upstream-play-era.proto, loaded with
 * @grpc/proto-loader: no code or generated type of the gateway).
 *
 * - a play is announced on StreamPlayProgress with `{play_id, status: PENDING, output: "Play
 *   started"}`; RegisterPlay is not called;
 * - each Ansible task is reported on StreamTaskProgress as `{play_id, task_id: n, result: {task_id,
 *   task_name, status: RUNNING, started_at}}`, then `{result: {status: COMPLETED|FAILED|SKIPPED,
 *   error, output, completed_at, metrics}}`; task_name at field 3 stays empty;
 * - senders run concurrently, so updates of different tasks interleave, and a resend after a
 *   broken stream repeats updates;
 * - the play ends with `{status: COMPLETED, output: "Play completed"}` or `{status: FAILED, error,
 *   output: "Play failed"}`, then both streams are half-closed and the connection closed.
 *
 * Whatever the server streams back is kept (and otherwise ignored, as a core does).
 */
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const protoFile = fileURLToPath(new URL("../fixtures/upstream-play-era.proto", import.meta.url));

/** A message as proto-loader builds it: camelCase fields, enums by name, longs as strings. */
// biome-ignore lint/suspicious/noExplicitAny: messages are plain objects shaped by the proto.
export type Msg = Record<string, any>;

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: object) => grpc.Client;

let ctor: Ctor | undefined;

/** The upstream SpageExecution client constructor, loaded once. */
function clientCtor(): Ctor {
  if (ctor) return ctor;
  const def = protoLoader.loadSync(protoFile, {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { spage: { core: { SpageExecution: Ctor } } };
  ctor = pkg.spage.core.SpageExecution;
  return ctor;
}

/** A timestamp as upstream sends it. */
export function now(): Msg {
  const ms = Date.now();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

/** What an Ansible task of a play does. */
export type StepPlan =
  | { readonly name: string; readonly outcome: "ok"; readonly output?: string }
  | { readonly name: string; readonly outcome: "skipped" }
  | { readonly name: string; readonly outcome: "failed"; readonly error: string };

/** The step updates of one Ansible task: its start and its end. */
export function stepUpdates(playId: string, n: number, step: StepPlan): [Msg, Msg] {
  const start = {
    playId,
    taskId: n,
    result: { taskId: n, taskName: step.name, status: "TASK_STATUS_RUNNING", startedAt: now() },
    timestamp: now(),
  };
  const status =
    step.outcome === "ok"
      ? "TASK_STATUS_COMPLETED"
      : step.outcome === "failed"
        ? "TASK_STATUS_FAILED"
        : "TASK_STATUS_SKIPPED";
  const end = {
    playId,
    taskId: n,
    result: {
      taskId: n,
      taskName: step.name,
      status,
      error: step.outcome === "failed" ? step.error : "",
      output: step.outcome === "ok" ? (step.output ?? `ok: ${step.name}`) : "",
      completedAt: now(),
      metrics: { duration: 0.25 + n / 100, memoryAlloc: 1e6, goroutines: 12, cpuCount: 2 },
    },
    timestamp: now(),
  };
  return [start, end];
}

/** One bidirectional stream of the core, with what the server answered. */
export class CoreStream {
  readonly replies: Msg[] = [];
  readonly ended: Promise<grpc.StatusObject>;

  constructor(readonly call: grpc.ClientDuplexStream<Msg, Msg>) {
    call.on("data", (m: Msg) => this.replies.push(m));
    this.ended = new Promise((resolve) => {
      call.on("status", resolve);
      call.on("error", () => {});
    });
  }

  /** Sends one update; resolves once it is written. */
  send(m: Msg): Promise<void> {
    return new Promise((resolve, reject) =>
      this.call.write(m, (err?: Error) => (err ? reject(err) : resolve())),
    );
  }

  /** Waits until the server answered `n` updates in all. */
  async answered(n: number, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.replies.length < n) {
      if (Date.now() > until) throw new Error(`only ${this.replies.length} of ${n} updates answered`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Half-closes (CloseSend) and waits for the server to end the call. */
  async closeSend(): Promise<grpc.StatusObject> {
    this.call.end();
    return this.ended;
  }
}

/** A core of today connected to a gateway. */
export class PlayCore {
  readonly client: grpc.Client;

  constructor(address: string, metadata?: Readonly<Record<string, string>>) {
    const Ctor = clientCtor();
    this.client = new Ctor(address, grpc.credentials.createInsecure(), {
      "grpc.keepalive_time_ms": 60_000,
    });
    this.metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata ?? {})) this.metadata.set(k, v);
  }

  private readonly metadata: grpc.Metadata;

  /** Opens a StreamPlayProgress. */
  playStream(): CoreStream {
    const c = this.client as unknown as {
      streamPlayProgress(md: grpc.Metadata): grpc.ClientDuplexStream<Msg, Msg>;
    };
    return new CoreStream(c.streamPlayProgress(this.metadata));
  }

  /** Opens a StreamTaskProgress. */
  taskStream(): CoreStream {
    const c = this.client as unknown as {
      streamTaskProgress(md: grpc.Metadata): grpc.ClientDuplexStream<Msg, Msg>;
    };
    return new CoreStream(c.streamTaskProgress(this.metadata));
  }

  /** Calls a unary method by its name (lowerCamel, e.g. getPlayStatus). */
  unary(method: string, req: Msg): Promise<Msg> {
    const c = this.client as unknown as Record<
      string,
      (req: Msg, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Msg) => void) => void
    >;
    const fn = c[method];
    if (!fn) throw new Error(`no method ${method}`);
    return new Promise((resolve, reject) =>
      fn.call(this.client, req, this.metadata, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  /** Closes the connection. */
  close(): void {
    this.client.close();
  }
}

/** How a simulated play ends. */
export type PlayEnd = "completed" | "failed" | "completion-call" | "streams-only";

/**
 * Runs a whole play as a core of today does: "Play started", then every step's start and end
 * from `senders` concurrent senders over `taskStreams` task streams (updates of different steps
 * interleave, ends may overtake starts of later steps), each update sent twice when `duplicates`,
 * then the end `how` says, and both streams half-closed. Returns the streams (with their replies).
 */
export async function runPlay(
  core: PlayCore,
  playId: string,
  steps: readonly StepPlan[],
  how: PlayEnd,
  opts: { senders?: number; taskStreams?: number; duplicates?: boolean; playError?: string } = {},
): Promise<{ play: CoreStream; tasks: CoreStream[] }> {
  const play = core.playStream();
  await play.send({ playId, status: "PLAY_STATUS_PENDING", output: "Play started", timestamp: now() });
  await play.answered(1);
  const tasks = Array.from({ length: opts.taskStreams ?? 2 }, () => core.taskStream());
  const updates = steps.map((s, i) => stepUpdates(playId, i + 1, s));
  const senders = opts.senders ?? 3;
  let sent = 0;
  // Each sender takes the next step and sends its start, then (after a moment) its end, on a stream
  // of its own choice; the senders run at once, as a core's goroutines do.
  let next = 0;
  await Promise.all(
    Array.from({ length: senders }, async (_, s) => {
      for (;;) {
        const i = next++;
        const pair = updates[i];
        if (!pair) return;
        const stream = tasks[(i + s) % tasks.length] as CoreStream;
        for (const u of pair) {
          await stream.send(u);
          sent++;
          if (opts.duplicates) {
            await (tasks[(i + s + 1) % tasks.length] as CoreStream).send(u);
            sent++;
          }
          await new Promise((r) => setTimeout(r, 5 + ((i * 7 + s * 3) % 11)));
        }
      }
    }),
  );
  const until = Date.now() + 10_000;
  while (tasks.reduce((n, t) => n + t.replies.length, 0) < sent && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  if (how === "completed") {
    await play.send({ playId, status: "PLAY_STATUS_COMPLETED", output: "Play completed", timestamp: now() });
  } else if (how === "failed") {
    await play.send({
      playId,
      status: "PLAY_STATUS_FAILED",
      error: opts.playError ?? "a task failed",
      output: "Play failed",
      timestamp: now(),
    });
  } else if (how === "completion-call") {
    await core.unary("registerPlayCompletion", { playId, status: "PLAY_STATUS_COMPLETED" });
  }
  await Promise.all([play.closeSend(), ...tasks.map((t) => t.closeSend())]);
  return { play, tasks };
}
