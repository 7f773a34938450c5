/**
 * The agent's local SpageExecution for the cores it starts, as upstream Spage's design has a core
 * talk to its daemon on localhost. A core gets the relay's address as `--daemon-grpc` (plaintext
 * HTTP/2 on 127.0.0.1, no credentials, as cores speak); the relay passes each call on to the
 * gateway with the agent's own credentials, and only for tasks the gateway assigned to this agent
 * (in the play era, a play id is its task's id): a core cannot register, report on or read anyone
 * else's run, nor start or cancel runs. So the gateway needs no anonymous access for agent-run
 * tasks, and a core works against a gateway served over TLS.
 *
 * It serves both eras: RegisterTask, GetTaskStatus and StreamProgress of the task era;
 * RegisterPlay, GetPlayStatus, RegisterPlayCompletion, StreamTaskProgress and StreamPlayProgress
 * of the play era. Progress of either era is relayed message by message (upstream-stream.ts): each
 * is passed on and answered with the gateway's own reply. Messages are read ahead as they arrive,
 * so a core that cancels its stream on exit loses none.
 */
import { createServer, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type Client,
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type ProgressUpdate, ProgressUpdateSchema } from "../../../gen/spage/core/common_pb.js";
import { SpageExecution } from "../../../gen/spage/core/execution_pb.js";
import {
  type PlayProgressUpdate,
  PlayProgressUpdateSchema,
  PlayTaskResultSchema,
  type TaskProgressUpdate,
  TaskProgressUpdateSchema,
} from "../../../gen/spage/core/play_pb.js";
import { drainThenAnswer } from "../events/drain-then-answer.js";
import { RelayActivity } from "./relay-activity.js";
import { type OpenUpstream, UpstreamStream } from "./upstream-stream.js";

/** What the relay needs from its agent. */
export interface CoreRelayOptions {
  /** The agent's transport to the gateway, carrying its credentials. */
  readonly transport: Transport;
  /** Whether the gateway assigned this task (or play) to the agent, and it still holds it. */
  readonly isAssigned: (taskId: string) => boolean;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Longest wait between attempts to pass an update on (default 5 s). */
  readonly maxRetryDelayMs?: number;
}

/** A running relay. */
export interface CoreRelay {
  /** `127.0.0.1:<port>`, for a core's --daemon-grpc. */
  readonly address: string;
  /**
   * Resolves once the relay passes nothing on for `taskId` any more (its core's streams ended and
   * were answered), or after `timeoutMs`; true when quiet.
   */
  quiet(taskId: string, timeoutMs: number): Promise<boolean>;
  /** Stops accepting, ends open calls, and closes. */
  close(): Promise<void>;
}

/** What a relay's routes share. */
interface RelayContext {
  readonly upstream: Client<typeof SpageExecution>;
  readonly opts: CoreRelayOptions;
  readonly stopping: AbortSignal;
  /** Streams whose messages are still being passed on; waited for (bounded) on close. */
  readonly streams: Set<Promise<void>>;
  readonly activity: RelayActivity;
}

/** Starts the relay on a free loopback port. */
export async function startCoreRelay(opts: CoreRelayOptions): Promise<CoreRelay> {
  const stopping = new AbortController();
  const ctx: RelayContext = {
    upstream: createClient(SpageExecution, opts.transport),
    opts,
    stopping: stopping.signal,
    streams: new Set(),
    activity: new RelayActivity(),
  };
  const server: Http2Server = createServer(
    connectNodeAdapter({ routes: (router) => relayRoutes(router, ctx) }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const sessions = new Set<ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  return {
    address: `127.0.0.1:${port}`,
    quiet: (taskId, timeoutMs) => ctx.activity.quiet(taskId, timeoutMs),
    async close() {
      // Updates the cores sent before they exited are passed on first (bounded).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(ctx.streams),
        new Promise((r) => {
          timer = setTimeout(r, 2000);
        }),
      ]);
      clearTimeout(timer);
      stopping.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      const kill = setTimeout(() => {
        for (const s of sessions) s.destroy();
      }, 2000);
      await closed;
      clearTimeout(kill);
    },
  };
}

function refuse(taskId: string): ConnectError {
  return new ConnectError(
    `task ${taskId || "(none)"} was not assigned to this agent; the agent relays calls only for the runs it started`,
    Code.PermissionDenied,
  );
}

function relayRoutes(router: ConnectRouter, rc: RelayContext): void {
  const { upstream, opts, activity } = rc;
  const call = { signal: rc.stopping };
  /** Relays one unary call for an assigned task, counted as activity of that task. */
  const unary = async <T>(taskId: string, rpc: string, pass: () => Promise<T>): Promise<T> => {
    if (!opts.isAssigned(taskId)) {
      opts.log("warn", "a core called for a task not assigned to this agent; refused", { task: taskId, rpc });
      throw refuse(taskId);
    }
    activity.enter(taskId);
    try {
      return await pass();
    } finally {
      activity.leave(taskId);
    }
  };
  // Starting and canceling runs is the gateway's API's business, in either era.
  const noStart = async (): Promise<never> => {
    throw new ConnectError(
      "the agent's relay does not start runs; submit tasks through the gateway's API",
      Code.PermissionDenied,
    );
  };
  const noCancel = async (): Promise<never> => {
    throw new ConnectError(
      "the agent's relay does not cancel runs; cancel through the gateway's API",
      Code.PermissionDenied,
    );
  };
  router.service(SpageExecution, {
    executeTask: noStart,
    cancelTask: noCancel,
    executePlay: noStart,
    cancelPlay: noCancel,
    getTaskStatus: (req) => unary(req.taskId, "GetTaskStatus", () => upstream.getTaskStatus(req, call)),
    registerTask: (req) => unary(req.taskId, "RegisterTask", () => upstream.registerTask(req, call)),
    getPlayStatus: (req) => unary(req.playId, "GetPlayStatus", () => upstream.getPlayStatus(req, call)),
    registerPlay: (req) => unary(req.playId, "RegisterPlay", () => upstream.registerPlay(req, call)),
    registerPlayCompletion: (req) =>
      unary(req.playId, "RegisterPlayCompletion", () => upstream.registerPlayCompletion(req, call)),
    streamProgress: (updates, ctx) =>
      relayStream(rc, updates, ctx, {
        taskIdOf: (u) => u.taskId,
        open: (reqs, signal) => upstream.streamProgress(reqs, { signal }),
        refusal: progressRefusal,
      }),
    streamTaskProgress: (updates, ctx) =>
      relayStream(rc, updates, ctx, {
        taskIdOf: (u) => u.playId,
        open: (reqs, signal) => upstream.streamTaskProgress(reqs, { signal }),
        refusal: stepRefusal,
      }),
    streamPlayProgress: (updates, ctx) =>
      relayStream(rc, updates, ctx, {
        taskIdOf: (u) => u.playId,
        open: (reqs, signal) => upstream.streamPlayProgress(reqs, { signal }),
        refusal: playRefusal,
      }),
    healthCheck: (req) => upstream.healthCheck(req, call),
    getMetrics: (req) => upstream.getMetrics(req, call),
  });
}

/** How one progress method of either era is relayed. */
interface StreamSpec<I, O> {
  /** The task a message reports on (a play's id is its task's id). */
  readonly taskIdOf: (m: I) => string;
  readonly open: OpenUpstream<I, O>;
  /** The reply telling the core its message was not taken, as the gateway's own replies do. */
  readonly refusal: (m: I, err: ConnectError) => O;
}

/**
 * Relays one core stream: every message of an assigned task is passed on (one gateway stream per
 * core stream) and answered with the gateway's reply; a message of any other task is refused on
 * the stream, which goes on. The tasks it carried are busy until it is drained.
 */
function relayStream<I, O>(
  rc: RelayContext,
  messages: AsyncIterable<I>,
  ctx: HandlerContext,
  spec: StreamSpec<I, O>,
): AsyncIterable<O> {
  const { opts, activity } = rc;
  const upstream = new UpstreamStream(spec.open, rc.stopping, opts.maxRetryDelayMs ?? 5000);
  const carried = new Set<string>();
  let identified = false;
  const identify = () => {
    if (identified) return;
    identified = true;
    activity.identified();
  };
  activity.opened();
  let drained: () => void = () => {};
  const relayed = new Promise<void>((r) => {
    drained = r;
  });
  rc.streams.add(relayed);
  void relayed.then(() => rc.streams.delete(relayed));
  return drainThenAnswer(
    messages,
    ctx.signal,
    async (m) => {
      const taskId = spec.taskIdOf(m);
      if (!opts.isAssigned(taskId)) {
        identify();
        opts.log("warn", "a core reported on a task not assigned to this agent; refused", {
          task: taskId,
          rpc: ctx.method.name,
        });
        return spec.refusal(m, refuse(taskId));
      }
      if (!carried.has(taskId)) {
        carried.add(taskId);
        activity.enter(taskId);
      }
      identify();
      try {
        return await upstream.send(m);
      } catch (err) {
        return spec.refusal(m, ConnectError.from(err));
      }
    },
    () =>
      void upstream.close().finally(() => {
        identify();
        for (const id of carried) activity.leave(id);
        drained();
      }),
  );
}

function progressRefusal(u: ProgressUpdate, err: ConnectError): ProgressUpdate {
  return create(ProgressUpdateSchema, {
    taskId: u.taskId,
    progress: u.progress,
    message: err.rawMessage,
    metadata: { ack: "false", error: err.rawMessage, code: codeToString(err.code) },
    timestamp: timestampNow(),
  });
}

function stepRefusal(u: TaskProgressUpdate, err: ConnectError): TaskProgressUpdate {
  const number = u.taskId || u.result?.taskId || 0;
  return create(TaskProgressUpdateSchema, {
    playId: u.playId,
    taskId: number,
    taskName: u.taskName,
    result: create(PlayTaskResultSchema, {
      taskId: number,
      taskName: u.result?.taskName ?? "",
      output: "refused",
      error: `${codeToString(err.code)}: ${err.rawMessage}`,
    }),
    timestamp: timestampNow(),
  });
}

function playRefusal(u: PlayProgressUpdate, err: ConnectError): PlayProgressUpdate {
  return create(PlayProgressUpdateSchema, {
    playId: u.playId,
    output: "refused",
    error: `${codeToString(err.code)}: ${err.rawMessage}`,
    timestamp: timestampNow(),
  });
}
