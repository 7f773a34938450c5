/**
 * The agent's local SpageExecution for the cores it starts, as upstream Spage's design has a core
 * talk to its daemon on localhost. A core gets the relay's address as `--daemon-grpc` (plaintext
 * HTTP/2 on 127.0.0.1, no credentials, as cores speak); the relay passes each call on to the
 * gateway with the agent's own credentials, and only for tasks the gateway assigned to this agent:
 * a core cannot register, report on or read anyone else's run, nor start or cancel runs. So the
 * gateway needs no anonymous access for agent-run tasks, and a core works against a gateway served
 * over TLS.
 *
 * Progress is relayed update by update: each is passed on and answered with the gateway's own
 * reply. Updates are read ahead as they arrive, so a core that cancels its stream on exit loses
 * none, and an update whose passing on failed (the gateway restarted) is sent again on a new
 * stream until the gateway answers it or the relay stops.
 */
import { createServer, type Http2Server } from "node:http2";
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
import { drainThenAnswer } from "../events/drain-then-answer.js";
import { AsyncQueue } from "./async-queue.js";

/** What the relay needs from its agent. */
export interface CoreRelayOptions {
  /** The agent's transport to the gateway, carrying its credentials. */
  readonly transport: Transport;
  /** Whether the gateway assigned this task to the agent (and it still holds it). */
  readonly isAssigned: (taskId: string) => boolean;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Longest wait between attempts to pass an update on (default 5 s). */
  readonly maxRetryDelayMs?: number;
}

/** A running relay. */
export interface CoreRelay {
  /** `127.0.0.1:<port>`, for a core's --daemon-grpc. */
  readonly address: string;
  /** Stops accepting, ends open calls, and closes. */
  close(): Promise<void>;
}

/** Starts the relay on a free loopback port. */
export async function startCoreRelay(opts: CoreRelayOptions): Promise<CoreRelay> {
  const upstream = createClient(SpageExecution, opts.transport);
  const stopping = new AbortController();
  const streams = new Set<Promise<void>>();
  const server: Http2Server = createServer(
    connectNodeAdapter({ routes: (router) => relayRoutes(router, upstream, opts, stopping.signal, streams) }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const sessions = new Set<import("node:http2").ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      // Updates the cores sent before they exited are passed on first (bounded).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(streams),
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

function relayRoutes(
  router: ConnectRouter,
  upstream: Client<typeof SpageExecution>,
  opts: CoreRelayOptions,
  stopping: AbortSignal,
  streams: Set<Promise<void>>,
): void {
  const assigned = (taskId: string, rpc: string) => {
    if (opts.isAssigned(taskId)) return;
    opts.log("warn", "a core called for a task not assigned to this agent; refused", { task: taskId, rpc });
    throw refuse(taskId);
  };
  const call = { signal: stopping };
  router.service(SpageExecution, {
    async executeTask() {
      throw new ConnectError(
        "the agent's relay does not start runs; submit tasks through the gateway's API",
        Code.PermissionDenied,
      );
    },
    async cancelTask() {
      throw new ConnectError(
        "the agent's relay does not cancel runs; cancel through the gateway's API",
        Code.PermissionDenied,
      );
    },
    async getTaskStatus(req) {
      assigned(req.taskId, "GetTaskStatus");
      return upstream.getTaskStatus(req, call);
    },
    async registerTask(req) {
      assigned(req.taskId, "RegisterTask");
      return upstream.registerTask(req, call);
    },
    streamProgress(updates, ctx: HandlerContext) {
      const progress = new UpstreamProgress(upstream, stopping, opts.maxRetryDelayMs ?? 5000);
      let drained: () => void = () => {};
      const relayed = new Promise<void>((r) => {
        drained = r;
      });
      streams.add(relayed);
      void relayed.then(() => streams.delete(relayed));
      return drainThenAnswer(
        updates,
        ctx.signal,
        async (u) => {
          if (!opts.isAssigned(u.taskId)) {
            opts.log("warn", "a core reported on a task not assigned to this agent; refused", {
              task: u.taskId,
            });
            return refusal(u, refuse(u.taskId));
          }
          try {
            return await progress.send(u);
          } catch (err) {
            return refusal(u, ConnectError.from(err));
          }
        },
        () => void progress.close().finally(drained),
      );
    },
    async healthCheck(req) {
      return upstream.healthCheck(req, call);
    },
    async getMetrics(req) {
      return upstream.getMetrics(req, call);
    },
  });
}

/** A reply telling the core its update was not taken, as the gateway's own replies do. */
function refusal(u: ProgressUpdate, err: ConnectError): ProgressUpdate {
  return create(ProgressUpdateSchema, {
    taskId: u.taskId,
    progress: u.progress,
    message: err.rawMessage,
    metadata: { ack: "false", error: err.rawMessage, code: codeToString(err.code) },
    timestamp: timestampNow(),
  });
}

/**
 * One core stream's StreamProgress to the gateway, opened with its first update. The gateway
 * answers every update once, in order, so replies are matched to updates first in, first out.
 */
class UpstreamProgress {
  private queue: AsyncQueue<ProgressUpdate> | undefined;
  private readonly waiting: { resolve: (r: ProgressUpdate) => void; reject: (e: unknown) => void }[] = [];
  private done: Promise<void> | undefined;

  constructor(
    private readonly client: Client<typeof SpageExecution>,
    private readonly stopping: AbortSignal,
    private readonly maxRetryDelayMs: number,
  ) {}

  /** Passes `u` on and resolves with the gateway's reply, sending it again after a broken stream. */
  async send(u: ProgressUpdate): Promise<ProgressUpdate> {
    let delay = 100;
    for (;;) {
      try {
        return await this.once(u);
      } catch (err) {
        const ce = ConnectError.from(err);
        // Refused credentials or a closing relay do not heal by retrying.
        if (this.stopping.aborted || ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied)
          throw ce;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, this.maxRetryDelayMs);
      }
    }
  }

  /** Half-closes the gateway stream once the core's stream is over, and waits for it to end. */
  async close(): Promise<void> {
    this.queue?.end();
    await this.done;
  }

  private once(u: ProgressUpdate): Promise<ProgressUpdate> {
    const queue = this.open();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      queue.push(u);
    });
  }

  private open(): AsyncQueue<ProgressUpdate> {
    if (this.queue) return this.queue;
    const queue = new AsyncQueue<ProgressUpdate>();
    this.queue = queue;
    this.done = (async () => {
      try {
        for await (const reply of this.client.streamProgress(queue, { signal: this.stopping })) {
          this.waiting.shift()?.resolve(reply);
        }
        if (this.waiting.length > 0)
          throw new ConnectError("the gateway ended the stream early", Code.Unavailable);
      } catch (err) {
        for (const w of this.waiting.splice(0)) w.reject(err);
      } finally {
        if (this.queue === queue) this.queue = undefined;
        queue.end();
      }
    })();
    return queue;
  }
}
