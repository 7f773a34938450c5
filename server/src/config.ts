/**
 * Gateway configuration, parsed once from command-line flags and SPAGE_* environment variables
 * (flags win) into a frozen, typed object. A bad value stops the start with a message naming the
 * flag, the variable and what is expected.
 */
import { parseArgs } from "node:util";
import type { AccessPolicy, AnonymousExecution } from "./auth/access-policy.js";
import { type OidcSettings, oidcServeOptions, parseOidcSettings } from "./auth/oidc/oidc-settings.js";
import type { Rate } from "./auth/rate-limiter.js";
import { allScopes, type Scope } from "./auth/scopes.js";
import { type ClientAuth, clientAuthOf } from "./client-auth-config.js";
import { ConfigError } from "./config-error.js";
import { parseProxyEntry } from "./http/client-address.js";
import { readPem } from "./pem-file.js";
import { isPostgresUrl, isSchemaName } from "./store/postgres/postgres-store.js";
import { type TracingConfig, tracingConfigOf } from "./tracing/tracing-config.js";

export { ConfigError } from "./config-error.js";

/** The parsed configuration of `spage-gateway serve`. */
export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly tls?: {
    readonly cert: Buffer;
    readonly key: Buffer;
    readonly certPath: string;
    /** Client certificates (mutual TLS), with --tls-client-ca. */
    readonly clientAuth?: ClientAuth;
  };
  readonly corsOrigins: readonly string[];
  readonly logLevel: string;
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
  readonly maxTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly watchBuffer: number;
  readonly dataDir: string;
  /** The store: SQLite under dataDir, or PostgreSQL when `url` is set. */
  readonly database: { readonly url: string; readonly schema: string; readonly poolSize: number };
  readonly sweepIntervalMs: number;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly lostGraceMs: number;
  /** Time a core-only run's core has, after its stream ended, to continue on a new one. */
  readonly coreGraceMs: number;
  readonly cancelGraceMs: number;
  /** How often HTTP/2 connections with open streams are pinged (0: never). */
  readonly pingIntervalMs: number;
  readonly dispatchPollMs: number;
  /** Serve plain unary calls on the fast path (server/src/fast-path); false: Connect's handler only. */
  readonly fastPath: boolean;
  /** Authentication, anonymous cores and limits. */
  readonly access: AccessPolicy;
  /** Single sign-on through an OpenID provider, when configured. */
  readonly oidc?: OidcSettings;
  /** OpenTelemetry tracing; undefined (the default) when the gateway does not trace. */
  readonly tracing: TracingConfig | undefined;
}

/** Calls per second per principal, by class, unless --rate-limits says otherwise. */
const defaultRates: Readonly<Record<Scope | "streams", number>> = {
  "tasks:read": 1000,
  "tasks:write": 200,
  "tasks:cancel": 100,
  agent: 1000,
  execution: 2000,
  admin: 20,
  streams: 50,
};

type Kind = "string" | "int" | "list";

interface Option {
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly def: string;
  readonly help: string;
  readonly min?: number;
  readonly max?: number;
}

/** Every option of `serve`, in the order `--help` lists them. */
export const serveOptions: readonly Option[] = [
  {
    flag: "data-dir",
    env: "SPAGE_DATA_DIR",
    kind: "string",
    def: "./data",
    help: "directory of the SQLite database (spage.db); unused with --database-url",
  },
  {
    flag: "database-url",
    env: "SPAGE_DATABASE_URL",
    kind: "string",
    def: "",
    help: "postgres://user@host:port/db: keep everything in PostgreSQL instead of SQLite",
  },
  {
    flag: "database-schema",
    env: "SPAGE_DATABASE_SCHEMA",
    kind: "string",
    def: "public",
    help: "PostgreSQL schema of the gateway's tables (several gateways can share a server)",
  },
  {
    flag: "database-pool-size",
    env: "SPAGE_DATABASE_POOL_SIZE",
    kind: "int",
    def: "10",
    min: 1,
    max: 200,
    help: "PostgreSQL connections the gateway keeps at most",
  },
  { flag: "host", env: "SPAGE_HOST", kind: "string", def: "127.0.0.1", help: "address to listen on" },
  {
    flag: "port",
    env: "SPAGE_PORT",
    kind: "int",
    def: "9091",
    min: 0,
    max: 65535,
    help: "port to listen on (0 picks a free one)",
  },
  {
    flag: "tls-cert",
    env: "SPAGE_TLS_CERT",
    kind: "string",
    def: "",
    help: "PEM certificate file; with --tls-key serves TLS (ALPN h2, http/1.1)",
  },
  { flag: "tls-key", env: "SPAGE_TLS_KEY", kind: "string", def: "", help: "PEM private key file" },
  {
    flag: "tls-client-ca",
    env: "SPAGE_TLS_CLIENT_CA",
    kind: "string",
    def: "",
    help: "PEM file of the CAs whose client certificates are trusted (mutual TLS; needs --tls-cert); clients may then present a certificate, and --client-cert-scopes says what it may do",
  },
  {
    flag: "require-client-cert",
    env: "SPAGE_REQUIRE_CLIENT_CERT",
    kind: "string",
    def: "off",
    help: "on (or the bare flag): the TLS handshake refuses a client without a certificate the --tls-client-ca CAs signed; off: a certificate is optional",
  },
  {
    flag: "client-cert-scopes",
    env: "SPAGE_CLIENT_CERT_SCOPES",
    kind: "string",
    def: "",
    help: "scopes of client certificates by name, as kind:pattern=scope[,scope] entries separated by ';', kinds cn, dns, ip, uri, email; * matches any run of characters (within one label for dns); the first matching entry wins, e.g. \"cn:daemon-*=agent; dns:core.example.com=execution,tasks:read\"",
  },
  {
    flag: "cors-origins",
    env: "SPAGE_CORS_ORIGINS",
    kind: "list",
    def: "",
    help: "comma-separated browser origins allowed to call the API (* for any)",
  },
  {
    flag: "log-level",
    env: "SPAGE_LOG_LEVEL",
    kind: "string",
    def: "info",
    help: "fatal, error, warn, info, debug, trace or silent",
  },
  {
    flag: "read-max-bytes",
    env: "SPAGE_READ_MAX_BYTES",
    kind: "int",
    def: String(4 * 1024 * 1024),
    min: 1024,
    max: 256 * 1024 * 1024,
    help: "largest request message accepted, in bytes",
  },
  {
    flag: "write-max-bytes",
    env: "SPAGE_WRITE_MAX_BYTES",
    kind: "int",
    def: String(16 * 1024 * 1024),
    min: 1024,
    max: 256 * 1024 * 1024,
    help: "largest response message sent, in bytes",
  },
  {
    flag: "max-timeout-ms",
    env: "SPAGE_MAX_TIMEOUT_MS",
    kind: "int",
    def: String(24 * 3600 * 1000),
    min: 0,
    help: "longest deadline a client may ask for (0: no limit)",
  },
  {
    flag: "headers-timeout-ms",
    env: "SPAGE_HEADERS_TIMEOUT_MS",
    kind: "int",
    def: "10000",
    min: 100,
    help: "time for a new connection to send its preface and request headers",
  },
  {
    flag: "request-timeout-ms",
    env: "SPAGE_REQUEST_TIMEOUT_MS",
    kind: "int",
    def: "60000",
    min: 0,
    help: "time for an HTTP/1.1 request body to arrive in full (0: no limit)",
  },
  {
    flag: "keep-alive-timeout-ms",
    env: "SPAGE_KEEP_ALIVE_TIMEOUT_MS",
    kind: "int",
    def: "5000",
    min: 0,
    help: "idle HTTP/1.1 keep-alive connection lifetime",
  },
  {
    flag: "idle-timeout-ms",
    env: "SPAGE_IDLE_TIMEOUT_MS",
    kind: "int",
    def: "300000",
    min: 100,
    help: "idle HTTP/2 connection lifetime (connections with open streams stay)",
  },
  {
    flag: "max-header-bytes",
    env: "SPAGE_MAX_HEADER_BYTES",
    kind: "int",
    def: "16384",
    min: 1024,
    max: 1024 * 1024,
    help: "largest request header block, in bytes",
  },
  {
    flag: "shutdown-timeout-ms",
    env: "SPAGE_SHUTDOWN_TIMEOUT_MS",
    kind: "int",
    def: "5000",
    min: 0,
    help: "on SIGTERM/SIGINT, time open calls get before they are ended with UNAVAILABLE",
  },
  {
    flag: "watch-buffer",
    env: "SPAGE_WATCH_BUFFER",
    kind: "int",
    def: "10000",
    min: 16,
    help: "live events buffered per watcher before a slow one is ended",
  },
  {
    flag: "sweep-interval-ms",
    env: "SPAGE_SWEEP_INTERVAL_MS",
    kind: "int",
    def: "1000",
    min: 10,
    max: 60000,
    help: "how often task deadlines, cancels, daemon leases and ended core streams are checked",
  },
  {
    flag: "heartbeat-ms",
    env: "SPAGE_HEARTBEAT_MS",
    kind: "int",
    def: "5000",
    min: 50,
    help: "how often daemons are asked to heartbeat",
  },
  {
    flag: "lease-ms",
    env: "SPAGE_LEASE_MS",
    kind: "int",
    def: "15000",
    min: 100,
    help: "a daemon not heard from for this long is gone (and a core stream record not renewed for this long counts as dropped)",
  },
  {
    flag: "lost-grace-ms",
    env: "SPAGE_LOST_GRACE_MS",
    kind: "int",
    def: "30000",
    min: 0,
    help: "time a gone daemon, or a Spage core whose connection dropped mid-step, has to come back before its running tasks are LOST",
  },
  {
    flag: "core-grace-ms",
    env: "SPAGE_CORE_GRACE_MS",
    kind: "int",
    def: "5000",
    min: 0,
    help: "time a Spage core reporting on its own has, after its progress stream ended, to open a new one before its run ends",
  },
  {
    flag: "ping-interval-ms",
    env: "SPAGE_PING_INTERVAL_MS",
    kind: "int",
    def: "10000",
    min: 0,
    help: "how often HTTP/2 connections with open streams are pinged; one that has not answered by the next ping is closed, so a peer that vanished silently is cut within twice this (0: never)",
  },
  {
    flag: "cancel-grace-ms",
    env: "SPAGE_CANCEL_GRACE_MS",
    kind: "int",
    def: "30000",
    min: 100,
    help: "time a daemon has to confirm a cancel",
  },
  {
    flag: "dispatch-poll-ms",
    env: "SPAGE_DISPATCH_POLL_MS",
    kind: "int",
    def: "1000",
    min: 10,
    max: 60000,
    help: "how often the queue is checked for work queued elsewhere",
  },
  {
    flag: "fast-path",
    env: "SPAGE_FAST_PATH",
    kind: "string",
    def: "on",
    help: "on: unary calls are served by the fast path, everything else by Connect's handler; off (or --no-fast-path): Connect's handler serves every call",
  },
  {
    flag: "auth",
    env: "SPAGE_AUTH",
    kind: "string",
    def: "on",
    help: "on: SpageAPI calls need an API key or session token; off: anyone may call anything",
  },
  {
    flag: "token-ttl-seconds",
    env: "SPAGE_TOKEN_TTL_SECONDS",
    kind: "int",
    def: "3600",
    min: 1,
    max: 30 * 24 * 3600,
    help: "lifetime of the session tokens Authenticate issues",
  },
  {
    flag: "anonymous-execution",
    env: "SPAGE_ANONYMOUS_EXECUTION",
    kind: "string",
    def: "loopback",
    help: "who may call SpageExecution without credentials (Spage cores send none): loopback, any or none",
  },
  {
    flag: "trusted-proxies",
    env: "SPAGE_TRUSTED_PROXIES",
    kind: "list",
    def: "",
    help: "comma-separated addresses or CIDRs of reverse proxies whose Forwarded / X-Forwarded-For headers name the real client; such headers from any other peer are not believed, and their requests are never let in as local Spage cores",
  },
  {
    flag: "rate-limits",
    env: "SPAGE_RATE_LIMITS",
    kind: "list",
    def: "",
    help: `per-principal limits as class=calls_per_second[/burst], comma-separated; classes: ${[...allScopes, "streams"].join(", ")}; 0 is unlimited (defaults: ${Object.entries(
      defaultRates,
    )
      .map(([k, n]) => `${k}=${n}`)
      .join(",")}; burst twice the rate)`,
  },
  {
    flag: "max-streams-per-principal",
    env: "SPAGE_MAX_STREAMS_PER_PRINCIPAL",
    kind: "int",
    def: "1000",
    min: 0,
    help: "streams one principal may have open at once (0: no cap)",
  },
  {
    flag: "auth-failures-per-minute",
    env: "SPAGE_AUTH_FAILURES_PER_MINUTE",
    kind: "int",
    def: "20",
    min: 0,
    help: "failed authentications allowed per client address and minute before it must wait (0: no limit)",
  },
  ...oidcServeOptions,
  {
    flag: "otel-endpoint",
    env: "SPAGE_OTEL_ENDPOINT",
    kind: "string",
    def: "",
    help: "OTLP/HTTP collector URL (e.g. http://127.0.0.1:4318): send OpenTelemetry traces there; off by default, also on with the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, off with OTEL_SDK_DISABLED=true",
  },
];

/** The `--help` text of `serve`. */
export function serveHelp(): string {
  const lines = serveOptions.map((o) => {
    const left = `  --${o.flag}${o.kind === "int" ? " N" : " VALUE"}`;
    const def = o.def === "" ? "" : ` (default ${o.def})`;
    return `${left.padEnd(30)} ${o.help}${def}\n${"".padEnd(31)}env ${o.env}`;
  });
  return [
    "Usage: spage-gateway [serve] [options]",
    "",
    "Runs the gateway: SpageExecution and SpageAPI over gRPC, gRPC-Web and Connect on one port.",
    "",
    "Options (flags win over environment variables):",
    ...lines,
    "  --help                         show this help",
  ].join("\n");
}

/** Parses flags and environment into a frozen config; throws ConfigError on a bad value. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: shorthands(argv),
      options: Object.fromEntries(serveOptions.map((o) => [o.flag, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}. Run with --help to see the options.`);
  }
  const raw = (o: Option): { value: string; source: string } => {
    const flag = parsed.values[o.flag];
    if (typeof flag === "string") return { value: flag, source: `--${o.flag}` };
    const fromEnv = env[o.env];
    if (fromEnv !== undefined && fromEnv !== "") return { value: fromEnv, source: o.env };
    return { value: o.def, source: "default" };
  };
  const byFlag = new Map(serveOptions.map((o) => [o.flag, o]));
  const opt = (flag: string): Option => {
    const o = byFlag.get(flag);
    if (!o) throw new Error(`no option ${flag}`);
    return o;
  };
  const str = (flag: string) => raw(opt(flag)).value;
  const int = (flag: string) => {
    const o = opt(flag);
    const { value, source } = raw(o);
    const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
    const min = o.min ?? 0;
    const max = o.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(
        `invalid ${source} "${value}": expected a whole number from ${min} to ${max} (flag --${o.flag}, env ${o.env})`,
      );
    }
    return n;
  };
  const list = (flag: string) =>
    str(flag)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");

  const onOff = (flag: string) => {
    const { value, source } = raw(opt(flag));
    if (value !== "on" && value !== "off") {
      throw new ConfigError(`invalid ${source} "${value}": expected on or off`);
    }
    return value === "on";
  };

  const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
  const logLevel = str("log-level");
  if (!logLevels.includes(logLevel)) {
    throw new ConfigError(`invalid log level "${logLevel}": expected one of ${logLevels.join(", ")}`);
  }

  const certPath = str("tls-cert");
  const keyPath = str("tls-key");
  let tlsFiles: GatewayConfig["tls"];
  if ((certPath === "") !== (keyPath === "")) {
    throw new ConfigError("TLS needs both --tls-cert and --tls-key (env SPAGE_TLS_CERT and SPAGE_TLS_KEY)");
  }
  const clientAuth = clientAuthOf(str, onOff, certPath !== "");
  if (certPath !== "") {
    tlsFiles = {
      cert: readPem(certPath, "--tls-cert"),
      key: readPem(keyPath, "--tls-key"),
      certPath,
      ...(clientAuth ? { clientAuth: Object.freeze(clientAuth) } : {}),
    };
  }

  for (const origin of list("cors-origins")) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(
        `invalid CORS origin "${origin}": expected scheme://host[:port] with no path, e.g. http://localhost:5173, or *`,
      );
    }
  }

  const oidc = parseOidcSettings(str, list);
  if (oidc && "error" in oidc) throw new ConfigError(oidc.error);

  return Object.freeze({
    host: str("host"),
    port: int("port"),
    tls: tlsFiles,
    corsOrigins: Object.freeze(list("cors-origins")),
    logLevel,
    readMaxBytes: int("read-max-bytes"),
    writeMaxBytes: int("write-max-bytes"),
    maxTimeoutMs: int("max-timeout-ms"),
    headersTimeoutMs: int("headers-timeout-ms"),
    requestTimeoutMs: int("request-timeout-ms"),
    keepAliveTimeoutMs: int("keep-alive-timeout-ms"),
    idleTimeoutMs: int("idle-timeout-ms"),
    maxHeaderBytes: int("max-header-bytes"),
    shutdownTimeoutMs: int("shutdown-timeout-ms"),
    watchBuffer: int("watch-buffer"),
    dataDir: str("data-dir"),
    database: Object.freeze(databaseOf(str, int)),
    sweepIntervalMs: int("sweep-interval-ms"),
    heartbeatMs: int("heartbeat-ms"),
    leaseMs: int("lease-ms"),
    lostGraceMs: int("lost-grace-ms"),
    coreGraceMs: int("core-grace-ms"),
    cancelGraceMs: int("cancel-grace-ms"),
    pingIntervalMs: int("ping-interval-ms"),
    dispatchPollMs: int("dispatch-poll-ms"),
    fastPath: onOff("fast-path"),
    access: Object.freeze(accessPolicy(str, int, list)),
    tracing: tracingOf(raw(opt("otel-endpoint")), env),
    ...(oidc ? { oidc: Object.freeze(oidc) } : {}),
  });
}

/**
 * Expands the flags that stand alone: --no-fast-path is short for --fast-path off, and a bare
 * --require-client-cert (followed by no value, only another flag or nothing) for
 * --require-client-cert on.
 */
function shorthands(argv: readonly string[]): string[] {
  return argv.flatMap((a, i) => {
    if (a === "--no-fast-path") return ["--fast-path", "off"];
    const next = argv[i + 1];
    if (a === "--require-client-cert" && (next === undefined || next.startsWith("-"))) {
      return ["--require-client-cert=on"];
    }
    return [a];
  });
}

function tracingOf(
  flag: { value: string; source: string },
  env: NodeJS.ProcessEnv,
): TracingConfig | undefined {
  const tracing = tracingConfigOf(flag, env, (message) => {
    throw new ConfigError(message);
  });
  return tracing && Object.freeze(tracing);
}

function databaseOf(str: (flag: string) => string, int: (flag: string) => number): GatewayConfig["database"] {
  const url = str("database-url");
  if (url !== "" && !isPostgresUrl(url)) {
    throw new ConfigError(
      "invalid --database-url (env SPAGE_DATABASE_URL): expected postgres://user@host:port/database",
    );
  }
  const schema = str("database-schema");
  if (!isSchemaName(schema)) {
    throw new ConfigError(
      `invalid --database-schema "${schema}" (env SPAGE_DATABASE_SCHEMA): lower-case letters, digits and _, starting with a letter or _`,
    );
  }
  return { url, schema, poolSize: int("database-pool-size") };
}

function accessPolicy(
  str: (flag: string) => string,
  int: (flag: string) => number,
  list: (flag: string) => string[],
): AccessPolicy {
  const auth = str("auth");
  if (auth !== "on" && auth !== "off") {
    throw new ConfigError(`invalid --auth "${auth}" (env SPAGE_AUTH): expected on or off`);
  }
  const anonymous = str("anonymous-execution");
  if (!["loopback", "any", "none"].includes(anonymous)) {
    throw new ConfigError(
      `invalid --anonymous-execution "${anonymous}" (env SPAGE_ANONYMOUS_EXECUTION): expected loopback, any or none`,
    );
  }
  const rates = new Map<string, Rate>(
    Object.entries(defaultRates).map(([k, n]) => [k, { perSecond: n, burst: n * 2 }]),
  );
  for (const item of list("rate-limits")) {
    const m = /^([a-z:]+)=(\d+)(?:\/(\d+))?$/.exec(item);
    if (!m?.[1] || !m[2] || !rates.has(m[1])) {
      throw new ConfigError(
        `invalid --rate-limits entry "${item}" (env SPAGE_RATE_LIMITS): expected class=calls_per_second[/burst] with class one of ${[...rates.keys()].join(", ")}`,
      );
    }
    const perSecond = Number(m[2]);
    rates.set(m[1], { perSecond, burst: m[3] ? Math.max(1, Number(m[3])) : Math.max(1, perSecond * 2) });
  }
  const rate = (k: string) => rates.get(k) as Rate;
  const failures = int("auth-failures-per-minute");
  const trustedProxies = list("trusted-proxies");
  for (const entry of trustedProxies) {
    if (!parseProxyEntry(entry)) {
      throw new ConfigError(
        `invalid --trusted-proxies entry "${entry}" (env SPAGE_TRUSTED_PROXIES): expected an IP address or a CIDR such as 127.0.0.1, ::1 or 10.0.0.0/8`,
      );
    }
  }
  return {
    enabled: auth === "on",
    anonymousExecution: anonymous as AnonymousExecution,
    tokenTtlMs: int("token-ttl-seconds") * 1000,
    rates: Object.fromEntries(allScopes.map((s) => [s, rate(s)])) as Record<Scope, Rate>,
    streamRate: rate("streams"),
    maxStreamsPerPrincipal: int("max-streams-per-principal"),
    authFailureRate: { perSecond: failures / 60, burst: failures },
    trustedProxies: Object.freeze(trustedProxies),
  };
}
