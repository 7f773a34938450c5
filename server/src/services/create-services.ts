/**
 * Builds every service object of a gateway from its config and store, and starts and stops the
 * background parts (dispatcher, sweeper). Kept apart from app.ts so the HTTP wiring stays small.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { FastifyBaseLogger } from "fastify";
import { type Authenticator, createAuthenticator } from "../auth/authenticator.js";
import { createAccessTokenCheck } from "../auth/oidc/access-tokens.js";
import { createOidcIssuer, type OidcIssuer } from "../auth/oidc/oidc-issuer.js";
import { RateLimiter, StreamCounter } from "../auth/rate-limiter.js";
import type { GatewayConfig } from "../config.js";
import { createEventBus, type EventBus } from "../events/event-bus.js";
import { createSharedEventBus } from "../events/shared-event-bus.js";
import type { ServiceDeps } from "../routes.js";
import type { GatewayStore } from "../store/gateway-store.js";
import { type AuditLog, createAuditLog } from "./audit-log.js";
import { CoreRuns } from "./core-runs.js";
import { DaemonRegistry } from "./daemon-registry.js";
import { DaemonTasks } from "./daemon-tasks.js";
import { DependencyResolver } from "./dependencies.js";
import { Dispatcher } from "./dispatcher.js";
import { createGatewayMetrics, type GatewayMetrics } from "./gateway-metrics.js";
import { createHealthState, type HealthState } from "./health-state.js";
import { PlayService } from "./play-service.js";
import { ReplicaPresence } from "./replica-presence.js";
import { TaskService } from "./task-service.js";
import { startTaskSweeper, type TaskSweeper } from "./task-sweeper.js";
import { TaskWriter } from "./task-writer.js";
import { WorkflowService } from "./workflow-service.js";

/** How often a gateway on a shared store renews its presence; one not renewed for 3 of these is gone. */
const replicaRenewMs = 2000;

/** How long expired session tokens are kept, and how often they are looked for. */
const expiredSessionKeepMs = 24 * 3600 * 1000;
const sessionSweepMs = 10 * 60 * 1000;

/** The services of one gateway. */
export interface Services {
  readonly bus: EventBus;
  readonly health: HealthState;
  readonly metrics: GatewayMetrics;
  readonly registry: DaemonRegistry;
  readonly dispatcher: Dispatcher;
  readonly coreRuns: CoreRuns;
  /** Access control: credentials, limits and the audit log, for the interceptors. */
  readonly access: {
    readonly authn: Authenticator;
    readonly limiter: RateLimiter;
    readonly streams: StreamCounter;
    readonly audit: AuditLog;
    /** The OpenID provider people sign in with, when configured. */
    readonly oidc?: OidcIssuer;
  };
  /** What routes.ts registers. */
  readonly deps: ServiceDeps;
  /** Starts following the shared event log (PostgreSQL), the dispatcher and the sweeper. */
  start(): Promise<void>;
  /** Stops them. */
  stop(): void;
}

/** Creates the services. */
export function createServices(
  config: GatewayConfig,
  store: GatewayStore,
  version: string,
  log: FastifyBaseLogger,
): Services {
  // A store other gateways write too delivers its live events from the table (shared-event-bus.ts).
  const shared = store.shared ? createSharedEventBus(store, log) : undefined;
  const bus: EventBus = shared ?? createEventBus();
  const writer = new TaskWriter(store, bus);
  const tasks = new TaskService(writer, { cancelGraceMs: config.cancelGraceMs });
  const plays = new PlayService(tasks, writer);
  const dependencies = new DependencyResolver(writer, log);
  const workflows = new WorkflowService(tasks, writer, dependencies);
  const health = createHealthState(store, version);
  const metrics = createGatewayMetrics(store, bus);
  const registry = new DaemonRegistry();
  const daemonTasks = new DaemonTasks(writer, {
    leaseMs: config.leaseMs,
    lostGraceMs: config.lostGraceMs,
    cancelGraceMs: config.cancelGraceMs,
  });
  const coreRuns = new CoreRuns(
    writer,
    { graceMs: config.coreGraceMs, lostGraceMs: config.lostGraceMs, leaseMs: config.leaseMs },
    log,
  );
  const dispatcher = new Dispatcher(registry, store, daemonTasks, bus, log, config.dispatchPollMs);
  const oidc = config.oidc ? createOidcIssuer(config.oidc) : undefined;
  const authn = createAuthenticator(store, {
    tokenTtlMs: config.access.tokenTtlMs,
    ...(oidc ? { foreignToken: createAccessTokenCheck(oidc) } : {}),
  });
  const limiter = new RateLimiter();
  const streams = new StreamCounter();
  const audit = createAuditLog(store);
  // Several gateways on one store: each renews its presence, takes its share of every rate, and
  // the task sweeps run on whichever gateway holds their lease.
  const replicaId = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const replicas = store.replicaSeen
    ? new ReplicaPresence(store, replicaId, limiter, log, replicaRenewMs)
    : undefined;
  const sweepLease =
    store.claimLease &&
    ((): Promise<boolean> =>
      store.claimLease?.(
        "task-sweeps",
        replicaId,
        new Date(Date.now() + Math.max(3 * config.sweepIntervalMs, 1500)),
      ) ?? Promise.resolve(true));
  let sweeper: TaskSweeper | undefined;
  let sessionSweep: NodeJS.Timeout | undefined;
  const deps: ServiceDeps = {
    store,
    bus,
    tasks,
    workflows,
    plays,
    coreRuns,
    health,
    metrics,
    watchBuffer: config.watchBuffer,
    daemons: {
      registry,
      daemonTasks,
      dispatcher,
      writer,
      store,
      bus,
      metrics,
      log,
      heartbeatMs: config.heartbeatMs,
    },
    access: { store, authn, limiter, policy: config.access },
    audit,
  };
  return {
    bus,
    health,
    metrics,
    registry,
    dispatcher,
    coreRuns,
    access: { authn, limiter, streams, audit, ...(oidc ? { oidc } : {}) },
    deps,
    async start() {
      await shared?.start();
      dependencies.start();
      dispatcher.start();
      coreRuns.start();
      await replicas?.start();
      sweeper = startTaskSweeper(
        tasks,
        daemonTasks,
        registry,
        coreRuns,
        dependencies,
        log,
        config.sweepIntervalMs,
        sweepLease,
      );
      // Expired session tokens are kept a day (ValidateToken can still say when they expired),
      // then deleted, so the table does not grow with every Authenticate forever.
      sessionSweep = setInterval(() => {
        store.deleteExpiredSessions(new Date(Date.now() - expiredSessionKeepMs)).catch((err: unknown) => {
          log.error({ err }, "expired sessions not deleted");
        });
      }, sessionSweepMs);
      sessionSweep.unref();
    },
    stop() {
      shared?.stop();
      replicas?.stop();
      dependencies.stop();
      dispatcher.stop();
      coreRuns.stop();
      sweeper?.stop();
      clearInterval(sessionSweep);
    },
  };
}
