/**
 * Builds the gateway application: services, interceptors, CORS, health routes and the one-port
 * listener, wired into one Fastify instance. Never listens; `main.ts` (and each test) does that.
 */

import { setMaxListeners } from "node:events";
import type * as net from "node:net";
import { Code, ConnectError, cors as connectCors } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import fastifyCors from "@fastify/cors";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import { clientCertOf, rememberClientCert } from "./auth/client-cert.js";
import { createOidcSignIn } from "./auth/oidc/oidc-sign-in.js";
import { CallValues } from "./call-values.js";
import type { GatewayConfig } from "./config.js";
import {
  kClientCert,
  kLog,
  kNodeRequest,
  kPeerAddress,
  kRequestId,
  kViaUntrustedProxy,
} from "./context-keys.js";
import { UnavailableError } from "./domain/errors.js";
import type { EventBus } from "./events/event-bus.js";
import type { NodeRequestHeaders } from "./fast-path/call-context.js";
import { createFastPath } from "./fast-path/fast-path.js";
import { lazyChildLogger } from "./fast-path/lazy-logger.js";
import { recordRoutes } from "./fast-path/unary-methods.js";
import { createClientAddressResolver } from "./http/client-address.js";
import { registerDashboardRoutes } from "./http/dashboard-routes.js";
import { registerGrpcMessageEncoding } from "./http/grpc-message-encoding.js";
import { registerHealthRoutes } from "./http/health-routes.js";
import { registerMetricsRoute } from "./http/metrics-route.js";
import { registerNotFound } from "./http/not-found.js";
import { registerOidcRoutes } from "./http/oidc-routes.js";
import { createAuditInterceptor } from "./interceptors/audit.js";
import { createAuthInterceptor } from "./interceptors/auth.js";
import { createErrorMappingInterceptor } from "./interceptors/error-mapping.js";
import { createLoggingInterceptor } from "./interceptors/logging.js";
import { createMetricsInterceptor } from "./interceptors/metrics.js";
import { createRateLimitInterceptor } from "./interceptors/rate-limit.js";
import { createOnePortServer, type DualHandler, type OnePortServer } from "./listen.js";
import { createRoutes } from "./routes.js";
import { createServices, type Services } from "./services/create-services.js";
import type { HealthState } from "./services/health-state.js";
import type { GatewayStore } from "./store/gateway-store.js";
import { type GatewayTracing, startTracing } from "./tracing/tracer-setup.js";

/** Responses at least this large are compressed when the client accepts it (Connect's default). */
const compressMinBytes = 1024;
/** Compressions offered to clients, in Connect's default order. */
const acceptCompression = [compressionGzip, compressionBrotli];

let requestCounter = 0;
/** A request id unique in this process, in Fastify's default form. */
function nextRequestId(): string {
  return `req-${(requestCounter++).toString(36)}`;
}

/** What the app is built from. */
export interface AppDeps {
  readonly config: GatewayConfig;
  readonly store: GatewayStore;
  readonly version: string;
}

/** The built gateway: the Fastify app plus the parts shutdown needs. */
export interface Gateway {
  readonly app: FastifyInstance;
  readonly server: OnePortServer;
  readonly health: HealthState;
  readonly bus: EventBus;
  readonly services: Services;
  /** OpenTelemetry tracing, when configured (`--otel-endpoint`); undefined otherwise. */
  readonly tracing: GatewayTracing | undefined;
  /**
   * Stops accepting, ends open streams with UNAVAILABLE (watchers at once, other calls after the
   * configured grace), waits for connections to close (bounded), then closes the store and sends
   * the spans still buffered.
   */
  shutdown(): Promise<void>;
}

/** Builds the gateway without listening. */
export async function buildApp(deps: AppDeps): Promise<Gateway> {
  const { config, store } = deps;

  let server: OnePortServer | undefined;
  const app = Fastify({
    logger: { level: config.logLevel },
    // Every RPC is logged once by the logging interceptor; Fastify's per-request lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: "x-request-id",
    // Shared with the fast path, so request ids stay unique across both.
    genReqId: () => nextRequestId(),
    serverFactory: (handler) => {
      const clientAuth = config.tls?.clientAuth;
      server = createOnePortServer(handler as unknown as DualHandler, {
        tls: config.tls && {
          cert: config.tls.cert,
          key: config.tls.key,
          ...(clientAuth && {
            clientCa: clientAuth.ca,
            requireClientCert: clientAuth.require,
            onSecureConnection: (socket) => rememberClientCert(socket, clientAuth.map),
          }),
        },
        headersTimeoutMs: config.headersTimeoutMs,
        requestTimeoutMs: config.requestTimeoutMs,
        keepAliveTimeoutMs: config.keepAliveTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        maxHeaderBytes: config.maxHeaderBytes,
        pingIntervalMs: config.pingIntervalMs,
      });
      return server as never;
    },
  });

  if (config.corsOrigins.length > 0) {
    await app.register(fastifyCors, {
      origin: config.corsOrigins.includes("*") ? true : [...config.corsOrigins],
      methods: [...connectCors.allowedMethods],
      allowedHeaders: [...connectCors.allowedHeaders, "Authorization"],
      exposedHeaders: [...connectCors.exposedHeaders, "Retry-After"],
      maxAge: 7200,
    });
  }

  // The client's address, seen through the proxies the gateway trusts (http/client-address.ts),
  // and what its connection's client certificate says (auth/client-cert.ts).
  const clientOf = createClientAddressResolver(config.access.trustedProxies);
  const withClient = (values: CallValues, socket: net.Socket | undefined, headers: NodeRequestHeaders) => {
    const client = clientOf(socket?.remoteAddress ?? "", headers.forwarded, headers["x-forwarded-for"]);
    values.set(kPeerAddress, client.address);
    if (client.viaUntrustedProxy) values.set(kViaUntrustedProxy, true);
    const cert = clientCertOf(socket);
    if (cert) values.set(kClientCert, cert);
    return values;
  };

  registerGrpcMessageEncoding(app);
  const services = createServices(config, store, deps.version, app.log);
  const { bus, health, metrics } = services;
  registerHealthRoutes(app, health);
  registerMetricsRoute(app, metrics);
  await registerDashboardRoutes(app);
  const { oidc } = services.access;
  registerOidcRoutes(app, {
    ...(oidc ? { signIn: createOidcSignIn(oidc, services.access.authn) } : {}),
    clientSecret: config.oidc?.clientSecret ?? "",
    audit: services.access.audit,
    publicUrl: config.oidc?.publicUrl ?? "",
    tls: config.tls !== undefined,
    clientAddress: (req) =>
      clientOf(req.ip ?? "", req.headers.forwarded, req.headers["x-forwarded-for"]).address,
  });
  registerNotFound(app);

  // Aborted shutdownTimeoutMs after close starts: every RPC still running then ends with
  // shutdownError. Each running call listens on it until it ends, so it has as many listeners as
  // calls in flight: no limit, or Node would warn of a leak under load.
  const shutdownController = new AbortController();
  setMaxListeners(0, shutdownController.signal);
  const shutdownError = new ConnectError(
    "the gateway is shutting down; retry on another replica or after restart",
    Code.Unavailable,
  );
  app.addHook("preClose", (done) => {
    setTimeout(() => shutdownController.abort(shutdownError), config.shutdownTimeoutMs).unref();
    done();
  });

  // Tracing loads the OpenTelemetry SDK and its interceptor only when configured: a gateway that
  // does not trace runs the same chain as before, with nothing added per call.
  const tracing = config.tracing ? await startTracing(config.tracing, deps.version) : undefined;
  const tracingInterceptors = tracing
    ? [(await import("./interceptors/tracing.js")).createTracingInterceptor(tracing)]
    : [];

  // Outermost first: the tracing span covers the whole call, logging and metrics see every
  // outcome, audit records the code the client gets, and auth runs before the rate limiter so
  // limits are per principal. The same list serves Connect's handler and the fast path.
  const interceptors = [
    ...tracingInterceptors,
    createLoggingInterceptor(),
    createMetricsInterceptor(metrics),
    createAuditInterceptor(services.access.audit),
    createErrorMappingInterceptor(),
    createAuthInterceptor(
      services.access.authn,
      services.access.limiter,
      config.access,
      config.tls?.clientAuth !== undefined,
    ),
    createRateLimitInterceptor(services.access.limiter, services.access.streams, config.access),
  ];
  const served = recordRoutes(createRoutes(services.deps), config);
  await app.register(fastifyConnectPlugin, {
    routes: served.routes,
    interceptors,
    readMaxBytes: config.readMaxBytes,
    writeMaxBytes: config.writeMaxBytes,
    maxTimeoutMs: config.maxTimeoutMs,
    compressMinBytes,
    acceptCompression,
    shutdownSignal: shutdownController.signal,
    contextValues: (req) =>
      withClient(new CallValues(), req.raw.socket, req.headers)
        .set(kLog, req.log)
        .set(kRequestId, String(req.id))
        .set(kNodeRequest, req.raw),
  });
  const fastPath = config.fastPath
    ? createFastPath({
        unary: served.unary,
        serverStreaming: served.serverStreaming,
        interceptors,
        readMaxBytes: config.readMaxBytes,
        compressMinBytes,
        maxTimeoutMs: config.maxTimeoutMs,
        acceptCompression,
        shutdownSignal: shutdownController.signal,
        corsEnabled: config.corsOrigins.length > 0,
        served: () => metrics.count("fast_path_calls_total"),
        contextValues: (socket, headers) => {
          const id = (headers["x-request-id"] as string | undefined) || nextRequestId();
          return withClient(new CallValues(), socket, headers)
            .set(kLog, lazyChildLogger(app.log, { reqId: id }))
            .set(kRequestId, id);
        },
      })
    : undefined;

  await services.start();

  await app.ready();
  if (!server) throw new Error("serverFactory was not called");
  const listener = server;
  if (fastPath) listener.serveFastPathFirst(fastPath);

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () => {
    shuttingDown ??= (async () => {
      health.setShuttingDown();
      services.stop();
      bus.closeAll(
        new UnavailableError(
          "the gateway is shutting down; reconnect and resume from the last sequence received",
        ),
      );
      // Hard bound: whatever still holds a connection shortly after the grace period is cut. A
      // bidi stream whose response already ended with UNAVAILABLE can keep its HTTP/2 stream (and
      // so the connection) open until the client ends its side; many clients never do.
      const hardStop = setTimeout(() => listener.closeAllConnections(), config.shutdownTimeoutMs + 250);
      hardStop.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(hardStop);
        try {
          await store.close();
        } finally {
          // Last, so the spans of the calls that ended during shutdown are sent too.
          await tracing?.shutdown();
        }
      }
    })();
    return shuttingDown;
  };

  return { app, server: listener, health, bus, services, tracing, shutdown };
}
