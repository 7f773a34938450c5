/**
 * Clients of a gateway for tests that watch its event log: connect-node over native gRPC (h2c) for
 * both services, and `watchUntil`, which follows WatchEvents until the events seen so far satisfy a
 * condition, always under a deadline, and cancels the stream when done.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI, type WatchEventsRequestSchema } from "../../../gen/spage/api/tasks_pb.js";
import type { Event } from "../../../gen/spage/core/common_pb.js";
import { SpageExecution } from "../../../gen/spage/core/execution_pb.js";

/** connect-node gRPC clients of both services on one HTTP/2 session. */
export interface GatewayClients {
  readonly api: Client<typeof SpageAPI>;
  readonly exec: Client<typeof SpageExecution>;
  /** Ends the HTTP/2 session. */
  close(): void;
}

/**
 * Opens gRPC clients of both services on `baseUrl` (e.g. `http://127.0.0.1:1234`), sending
 * `Authorization: Bearer <token>` when a token is given.
 */
export function gatewayClients(baseUrl: string, token?: string): GatewayClients {
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors: token
      ? [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ]
      : [],
  });
  return {
    api: createClient(SpageAPI, transport),
    exec: createClient(SpageExecution, transport),
    close: () => sessionManager.abort(),
  };
}

/** One line per event, for assertion messages. */
export function describeEvents(events: readonly Event[]): string {
  return events.map((e) => `${e.sequence} ${e.type} ${e.taskId} ${JSON.stringify(e.data)}`).join("\n");
}

/**
 * Follows WatchEvents with `req` until `done(events)` holds for the events received so far, then
 * cancels the stream and returns them. Fails (listing what arrived) if the deadline passes first or
 * the stream ends on its own.
 */
export async function watchUntil(
  api: Client<typeof SpageAPI>,
  req: MessageInitShape<typeof WatchEventsRequestSchema>,
  done: (events: readonly Event[]) => boolean,
  timeoutMs = 10_000,
): Promise<Event[]> {
  const events: Event[] = [];
  const ac = new AbortController();
  const it = api.watchEvents(req, { timeoutMs, signal: ac.signal })[Symbol.asyncIterator]();
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      events.push(r.value);
      if (done(events)) return events;
    }
  } catch (err) {
    const ce = ConnectError.from(err);
    throw new Error(
      `watch ended before the expected events arrived (${ce.message}); received:\n${describeEvents(events)}`,
    );
  } finally {
    ac.abort();
    // One more read lets connect see the abort and clear its deadline timer, which would otherwise
    // keep the test process alive until the deadline.
    await it.next().catch(() => {});
  }
  throw new Error(`watch ended on its own before the expected events arrived:\n${describeEvents(events)}`);
}

/** Resolves with `promise`, or rejects once `timeoutMs` have passed without it settling. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
