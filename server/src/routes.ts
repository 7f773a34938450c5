/**
 * The single place where RPC services are registered. Used by the app and by the tests, so every
 * test talks to exactly what production serves.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import type { EventBus } from "./events/event-bus.js";
import type { AccessServiceDeps } from "./services/access-service.js";
import { createApiService } from "./services/api-service.js";
import type { AuditLog } from "./services/audit-log.js";
import type { CoreRuns } from "./services/core-runs.js";
import type { DaemonChannelDeps } from "./services/daemon-channel.js";
import { createExecutionService } from "./services/execution-service.js";
import type { GatewayMetrics } from "./services/gateway-metrics.js";
import { createGrpcHealthService } from "./services/grpc-health-service.js";
import type { HealthState } from "./services/health-state.js";
import type { PlayService } from "./services/play-service.js";
import { createReflectionServices, reflectionServices } from "./services/reflection-service.js";
import type { TaskService } from "./services/task-service.js";
import type { WorkflowService } from "./services/workflow-service.js";
import type { TaskStore } from "./store/task-store.js";

/** Everything the services need. */
export interface ServiceDeps {
  readonly store: TaskStore;
  readonly bus: EventBus;
  readonly tasks: TaskService;
  readonly workflows: WorkflowService;
  readonly plays: PlayService;
  readonly coreRuns: CoreRuns;
  readonly health: HealthState;
  readonly metrics: GatewayMetrics;
  readonly watchBuffer: number;
  readonly daemons: DaemonChannelDeps;
  readonly access: AccessServiceDeps;
  readonly audit: AuditLog;
}

/** The Spage services, in the order they are listed by reflection. */
export const spageServices: readonly DescService[] = [SpageExecution, SpageAPI];

/** Every service served on the port. */
export const servedServices: readonly DescService[] = [...spageServices, Health, ...reflectionServices];

/** Returns the router callback that registers every service. */
export function createRoutes(deps: ServiceDeps): (router: ConnectRouter) => void {
  const reflection = createReflectionServices([...spageServices, Health]);
  return (router) => {
    router.service(SpageExecution, createExecutionService({ ...deps, registry: deps.daemons.registry }));
    router.service(SpageAPI, createApiService(deps));
    router.service(
      Health,
      createGrpcHealthService(
        deps.health,
        spageServices.map((s) => s.typeName),
      ),
    );
    router.service(reflectionServices[0], reflection.v1);
    router.service(reflectionServices[1], reflection.v1alpha);
  };
}
