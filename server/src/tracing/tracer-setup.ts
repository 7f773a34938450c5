/**
 * Starts OpenTelemetry tracing for a gateway: a tracer provider whose spans a BatchSpanProcessor
 * sends to the OTLP/HTTP collector (JSON), the AsyncLocalStorage context manager (so a store
 * transaction finds the RPC span it runs under) and the W3C trace context propagator. The SDK is
 * imported here, dynamically, so a gateway that does not trace never loads it.
 */
import { context, propagation, type TextMapPropagator, type Tracer, trace } from "@opentelemetry/api";
import { setActiveTracer } from "./active-tracer.js";
import type { TracingConfig } from "./tracing-config.js";

/** The instrumentation scope spans are made under. */
const scopeName = "spage-gateway";

/** Tracing of a running gateway. */
export interface GatewayTracing {
  readonly tracer: Tracer;
  /** Reads `traceparent` / `tracestate` from incoming headers. */
  readonly propagator: TextMapPropagator;
  /** Sends every span ended so far (tests wait for it; shutdown does it too). */
  forceFlush(): Promise<void>;
  /** Sends what is left and stops tracing; safe to call twice. */
  shutdown(): Promise<void>;
}

/** Starts tracing as `config` says; `version` becomes `service.version`. */
export async function startTracing(config: TracingConfig, version: string): Promise<GatewayTracing> {
  const [
    { NodeTracerProvider, BatchSpanProcessor },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    core,
  ] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/core"),
  ]);
  const exporter = new OTLPTraceExporter({ url: config.tracesUrl });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": config.serviceName, "service.version": version }),
    // Batches honour the standard OTEL_BSP_* variables (delay, queue and batch sizes).
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const propagator = new core.W3CTraceContextPropagator();
  // register() installs the AsyncLocalStorage context manager, the propagator and the provider
  // globally, which is how context follows a call through its awaits.
  provider.register({ propagator });
  const tracer = provider.getTracer(scopeName, version);
  setActiveTracer(tracer);
  let stopped: Promise<void> | undefined;
  return {
    tracer,
    propagator,
    forceFlush: () => provider.forceFlush(),
    shutdown() {
      stopped ??= (async () => {
        setActiveTracer(undefined);
        try {
          await provider.shutdown();
        } finally {
          // Unregistered, so another gateway in this process (tests) can start tracing afresh.
          trace.disable();
          context.disable();
          propagation.disable();
        }
      })();
      return stopped;
    },
  };
}
