/**
 * Entry point of `spage-gateway serve`: config -> store -> app -> listen -> signals.
 */

import { join } from "node:path";
import { buildApp } from "./app.js";
import { bootstrapAdminKey, bootstrapNotice } from "./auth/bootstrap.js";
import { ConfigError, parseConfig, serveHelp } from "./config.js";
import type { GatewayStore } from "./store/gateway-store.js";
import { openStore, redactUrl } from "./store/open-store.js";
import { gatewayVersion } from "./version.js";

/** Runs the gateway until SIGTERM or SIGINT; resolves with the process exit code. */
export async function serve(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${serveHelp()}\n`);
    return 0;
  }
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spage-gateway: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let store: GatewayStore;
  let dbPath: string;
  try {
    ({ store, where: dbPath } = await openStore(config));
  } catch (err) {
    const where = config.database.url ? redactUrl(config.database.url) : join(config.dataDir, "spage.db");
    process.stderr.write(`spage-gateway: cannot open the database ${where}: ${(err as Error).message}\n`);
    return 1;
  }
  const gateway = await buildApp({ config, store, version: gatewayVersion });
  const log = gateway.app.log;
  if (config.access.enabled) {
    const first = await bootstrapAdminKey(store, gateway.services.access.audit);
    if (first) {
      process.stderr.write(`${bootstrapNotice(first)}\n`);
      log.info(
        { keyId: first.keyId },
        "created the first admin API key (its secret was printed once on stderr)",
      );
    }
  } else {
    log.warn("authentication is off (--auth off): anyone who reaches this port may call anything");
  }
  if (config.tls?.clientAuth?.map.length === 0) {
    log.warn(
      "client certificates are asked for (--tls-client-ca) but --client-cert-scopes is empty: a verified certificate authenticates nothing",
    );
  }
  try {
    await gateway.app.listen({ host: config.host, port: config.port });
  } catch (err) {
    log.fatal({ err }, `cannot listen on ${config.host}:${config.port}`);
    await gateway.shutdown();
    return 1;
  }
  if (config.tracing) {
    log.info(
      {
        tracesUrl: config.tracing.tracesUrl,
        serviceName: config.tracing.serviceName,
        from: config.tracing.source,
      },
      "sending OpenTelemetry traces",
    );
  }
  const addr = gateway.server.address();
  const clientAuth = config.tls?.clientAuth;
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  log.info(
    {
      host: config.host,
      port,
      tls: Boolean(config.tls),
      // Mutual TLS: whether client certificates are asked for, and whether the handshake needs one.
      clientCerts: clientAuth ? (clientAuth.require ? "required" : "optional") : "off",
      version: gatewayVersion,
      database: dbPath,
    },
    `spage gateway serving gRPC, gRPC-Web and Connect on ${config.tls ? "https" : "http"}://${config.host}:${port}`,
  );

  return new Promise<number>((resolve) => {
    // Logging must never stand between a signal and the shutdown (stdout may be a closed pipe).
    const say = (fn: () => void) => {
      try {
        fn();
      } catch {
        // nothing to do: the log is gone
      }
    };
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second signal: the operator wants out now.
        process.exit(1);
      }
      stopping = true;
      // Whatever happens during shutdown, the process ends within its bound; acknowledged writes
      // are on disk already, so an exit here loses nothing.
      setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 3000).unref();
      gateway.shutdown().then(
        () => {
          say(() => log.info("stopped"));
          resolve(0);
        },
        (err: unknown) => {
          say(() => log.error({ err }, "shutdown failed"));
          resolve(1);
        },
      );
      say(() => log.info({ signal }, "shutting down"));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    // A write to a closed stdout must not crash or wedge the gateway.
    process.stdout.on("error", () => {});
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"));
if (isMain) {
  serve(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(
        `spage-gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
