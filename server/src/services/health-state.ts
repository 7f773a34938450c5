/**
 * The gateway's own view of its health, shared by the seed's HealthCheck RPCs, the standard
 * grpc.health.v1 service and the /healthz and /readyz routes.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type HealthStatus, HealthStatusSchema } from "../../../gen/spage/core/common_pb.js";
import type { TaskStore } from "../store/task-store.js";

/** Overall condition: serving normally, serving with reduced function, or not serving. */
export type HealthLevel = "healthy" | "degraded" | "unhealthy";

/** A store ping slower than this makes the gateway report itself degraded. */
const slowStoreMs = 500;

/** Shared health state. */
export interface HealthState {
  /** Runs the checks now. */
  check(): Promise<HealthStatus>;
  /** Whether the gateway accepts new work (not shutting down and the store answers). */
  ready(): Promise<boolean>;
  /** Marks the gateway as shutting down; every check answers unhealthy from now on. */
  setShuttingDown(): void;
  /** Called whenever the shutting-down flag changes; returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  readonly shuttingDown: boolean;
}

/** Creates the health state over a store. */
export function createHealthState(store: TaskStore, version: string): HealthState {
  const started = Date.now();
  const listeners = new Set<() => void>();
  let shuttingDown = false;

  let lastPingMs = 0;
  async function storeOk(): Promise<string | undefined> {
    const started = performance.now();
    try {
      await store.ping();
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      lastPingMs = performance.now() - started;
    }
  }

  return {
    get shuttingDown() {
      return shuttingDown;
    },
    async check() {
      const storeError = await storeOk();
      let status: HealthLevel = "healthy";
      let message = "serving";
      if (shuttingDown) {
        status = "unhealthy";
        message = "shutting down";
      } else if (storeError) {
        status = "unhealthy";
        message = `store unavailable: ${storeError}`;
      } else if (lastPingMs > slowStoreMs) {
        status = "degraded";
        message = `store is slow: a ping took ${Math.round(lastPingMs)} ms`;
      }
      return create(HealthStatusSchema, {
        status,
        message,
        details: {
          store: storeError ? "error" : "ok",
          store_kind: store.kind,
          store_ping_ms: lastPingMs.toFixed(2),
          version,
          uptime_seconds: String(Math.floor((Date.now() - started) / 1000)),
          shutting_down: String(shuttingDown),
        },
        timestamp: timestampNow(),
      });
    },
    async ready() {
      return !shuttingDown && (await storeOk()) === undefined;
    },
    setShuttingDown() {
      if (shuttingDown) return;
      shuttingDown = true;
      for (const l of listeners) l();
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
