/**
 * When the gateway traces, and where it sends the spans: from `--otel-endpoint` (env
 * SPAGE_OTEL_ENDPOINT) or the standard OpenTelemetry variables. Off unless one of them names an
 * endpoint, so a gateway nobody configured for tracing never loads the SDK.
 */

/** Tracing as configured: spans go to `tracesUrl` (OTLP over HTTP, JSON). */
export interface TracingConfig {
  /** The full OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces. */
  readonly tracesUrl: string;
  /** The `service.name` resource attribute (OTEL_SERVICE_NAME, default spage-gateway). */
  readonly serviceName: string;
  /** Which setting turned tracing on, for the start-up log line. */
  readonly source: string;
}

/** The service name spans carry unless OTEL_SERVICE_NAME says otherwise. */
export const defaultServiceName = "spage-gateway";

/**
 * Decides whether to trace. `flag` is `--otel-endpoint` (or SPAGE_OTEL_ENDPOINT) as given, with the
 * name of where it came from; `fail` throws the caller's configuration error. Precedence:
 * OTEL_SDK_DISABLED=true turns tracing off whatever else is set (it is the standard kill switch);
 * then the flag; then OTEL_TRACES_EXPORTER (anything without "otlp", e.g. none, leaves it off);
 * then OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as it is) and OTEL_EXPORTER_OTLP_ENDPOINT (a base
 * URL, /v1/traces appended), as the OpenTelemetry specification defines them.
 */
export function tracingConfigOf(
  flag: { readonly value: string; readonly source: string },
  env: NodeJS.ProcessEnv,
  fail: (message: string) => never,
): TracingConfig | undefined {
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return undefined;
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || defaultServiceName;
  if (flag.value !== "") {
    // The flag takes a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT does, or the full traces URL.
    const base = endpointUrl(
      flag.value,
      `${flag.source} (flag --otel-endpoint, env SPAGE_OTEL_ENDPOINT)`,
      fail,
    );
    const tracesUrl = /\/v1\/traces\/?$/.test(base.pathname) ? base.href : withTracesPath(base);
    return { tracesUrl, serviceName, source: flag.source };
  }
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "").trim();
  if (exporters !== "" && !exporters.split(",").some((e) => e.trim() === "otlp")) return undefined;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) {
    const url = endpointUrl(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", fail);
    return { tracesUrl: url.href, serviceName, source: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" };
  }
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) {
    const url = endpointUrl(base, "OTEL_EXPORTER_OTLP_ENDPOINT", fail);
    return { tracesUrl: withTracesPath(url), serviceName, source: "OTEL_EXPORTER_OTLP_ENDPOINT" };
  }
  return undefined;
}

function endpointUrl(value: string, where: string, fail: (message: string) => never): URL {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    fail(
      `invalid ${where} "${value}": expected the http:// or https:// URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318`,
    );
  }
  return url;
}

function withTracesPath(base: URL): string {
  const u = new URL(base.href);
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/v1/traces`;
  return u.href;
}
