/**
 * The standard gRPC health service (grpc.health.v1.Health), for Kubernetes probes and
 * grpc_health_probe: Check, Watch (streams a new status whenever it changes) and List.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../../gen/grpc/health/v1/health_pb.js";
import { NotFoundError } from "../domain/errors.js";
import type { HealthState } from "./health-state.js";

/** Creates the health service; `services` are the fully-qualified names it answers for ("" = overall). */
export function createGrpcHealthService(
  health: HealthState,
  services: readonly string[],
): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services]);
  const statusOf = async (service: string): Promise<Serving> => {
    if (!known.has(service)) return Serving.SERVICE_UNKNOWN;
    return (await health.ready()) ? Serving.SERVING : Serving.NOT_SERVING;
  };
  return {
    async check(req) {
      const status = await statusOf(req.service);
      if (status === Serving.SERVICE_UNKNOWN) {
        throw new NotFoundError(`unknown service "${req.service}"`, { service: req.service });
      }
      return { status };
    },
    async *watch(req, ctx) {
      let last: Serving | undefined;
      let wake: (() => void) | undefined;
      const off = health.onChange(() => wake?.());
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        while (!ctx.signal.aborted) {
          const status = await statusOf(req.service);
          if (status !== last) {
            last = status;
            yield { status };
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        off();
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
    async list() {
      const statuses: Record<string, { status: Serving }> = {};
      for (const s of known) statuses[s] = { status: await statusOf(s) };
      return { statuses };
    },
  };
}
