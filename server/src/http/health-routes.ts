/**
 * Plain HTTP health routes for load balancers and Kubernetes: `GET /healthz` (the process serves)
 * and `GET /readyz` (it accepts work: not shutting down and the store answers).
 */
import type { FastifyInstance } from "fastify";
import type { HealthState } from "../services/health-state.js";

/** Registers /healthz and /readyz. */
export function registerHealthRoutes(app: FastifyInstance, health: HealthState): void {
  app.get("/healthz", async (_req, reply) => {
    const status = await health.check();
    reply.header("cache-control", "no-store");
    return {
      status: status.status === "unhealthy" && !health.shuttingDown ? "unhealthy" : "ok",
      detail: status.message,
    };
  });
  app.get("/readyz", async (_req, reply) => {
    const ready = await health.ready();
    const status = await health.check();
    reply.header("cache-control", "no-store");
    reply.code(ready ? 200 : 503);
    return { ready, status: status.status, detail: status.message, checks: status.details };
  });
}
