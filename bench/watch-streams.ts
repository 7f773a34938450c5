/**
 * Many WatchEvents streams opened at once over a few HTTP/2 connections, with connect-node's gRPC
 * client, the same client code for every server they watch.
 */
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import type { Event } from "../gen/spage/core/common_pb.js";
import { type ApiClient, apiClient } from "./protocols.js";

/** Open watch streams. */
export interface WatchStreams {
  /** Errors of streams that ended before close(). */
  readonly errors: readonly string[];
  /** Cancels every stream and closes the connections. */
  close(): Promise<void>;
}

/** Where the streams go, and how many. */
export interface WatchOptions {
  readonly baseUrl: string;
  /** Session token ("" for none). */
  readonly token: string;
  readonly watchers: number;
  /** HTTP/2 connections; watcher i uses connection i % sessions. */
  readonly sessions: number;
  /** WatchEventsRequest.after_sequence (0: the whole log). */
  readonly afterSequence?: bigint;
}

/**
 * Starts every stream in one go (no await between them) and calls `onEvent` with the watcher's
 * index and the receipt time (performance.now()) of each event.
 */
export function openWatchStreams(
  opts: WatchOptions,
  onEvent: (watcher: number, ev: Event, at: number) => void,
): WatchStreams {
  const sessions: ApiClient[] = Array.from({ length: opts.sessions }, () =>
    apiClient("grpc", opts.baseUrl, opts.token),
  );
  const abort = new AbortController();
  setMaxListeners(opts.watchers + 10, abort.signal);
  const errors: string[] = [];
  const request = { afterSequence: opts.afterSequence ?? 0n };
  const watch = async (i: number) => {
    const client = sessions[i % sessions.length] as ApiClient;
    try {
      for await (const ev of client.api.watchEvents(request, { signal: abort.signal })) {
        onEvent(i, ev, performance.now());
      }
      if (!abort.signal.aborted) errors.push(`watcher ${i}: stream ended`);
    } catch (err) {
      if (!abort.signal.aborted)
        errors.push(`watcher ${i}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const running = Array.from({ length: opts.watchers }, (_, i) => watch(i));
  return {
    errors,
    async close() {
      abort.abort();
      await Promise.allSettled(running);
      for (const s of sessions) s.close();
    },
  };
}

/** Polls `ok` every `everyMs` until it holds, `failed` holds, or `timeoutMs` pass; returns `ok()`. */
export async function waitFor(
  ok: () => boolean | Promise<boolean>,
  timeoutMs: number,
  failed: () => boolean = () => false,
  everyMs = 10,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await ok()) return true;
    if (failed() || performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
