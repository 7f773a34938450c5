/** Small React hooks shared by the views. */
import { useEffect, useState } from "react";
import type { Event } from "../../gen/spage/core/common_pb.js";
import { type LiveState, live } from "./live-events.js";

/** Calls `fn` with each batch of live events while the component is mounted. */
export function useLiveEvents(fn: (events: readonly Event[]) => void, deps: unknown[]): void {
  // biome-ignore lint/correctness/useExhaustiveDependencies: the caller lists what fn reads.
  useEffect(() => live.onEvents(fn), deps);
}

/** The live stream's state and its detail. */
export function useLiveState(): { state: LiveState; detail: string } {
  const [s, set] = useState({ state: live.state, detail: live.detail });
  useEffect(() => live.onState((state, detail) => set({ state, detail })), []);
  return s;
}

/** Re-renders every `ms` (for ages and durations). */
export function useTick(ms: number): number {
  const [n, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  return n;
}
