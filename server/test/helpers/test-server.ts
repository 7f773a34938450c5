/**
 * Starts a real gateway on 127.0.0.1 port 0 for a test, exactly as production builds it (same
 * buildApp, same routes), with short timeouts. `close()` refuses to finish while connections or
 * event subscriptions leak: a test that leaves a stream or socket open fails.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApp, type Gateway } from "../../src/app.js";
import { allScopes } from "../../src/auth/scopes.js";
import { type GatewayConfig, parseConfig } from "../../src/config.js";
import { createApiKey } from "../../src/services/api-keys.js";
import type { GatewayStore } from "../../src/store/gateway-store.js";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";

/** A running test gateway. */
export interface TestServer {
  readonly gateway: Gateway;
  readonly config: GatewayConfig;
  readonly port: number;
  /** Base URL, `http://127.0.0.1:<port>` (or https with TLS). */
  readonly url: string;
  /** With `--auth on`: an API key with every scope, made for the test. */
  readonly adminKey: string;
  /** Waits up to `waitMs` for clients to let go, asserts nothing leaked, then shuts the gateway down. */
  close(waitMs?: number): Promise<void>;
}

/**
 * Starts a gateway; `args` are extra `serve` flags (e.g. `["--shutdown-timeout-ms", "500"]`).
 * Authentication is off unless `args` holds `--auth on` (then `adminKey` holds a key with every
 * scope); suites about something else are not made to carry credentials.
 */
export async function startTestServer(
  args: readonly string[] = [],
  opts: { store?: GatewayStore; env?: NodeJS.ProcessEnv } = {},
): Promise<TestServer> {
  const config = parseConfig(
    [
      "--port",
      "0",
      "--log-level",
      process.env.SPAGE_TEST_LOG_LEVEL ?? "silent",
      "--shutdown-timeout-ms",
      "300",
      "--headers-timeout-ms",
      "1000",
      // Idle HTTP/1.1 keep-alive sockets close quickly, so the leak check can wait for them.
      "--keep-alive-timeout-ms",
      "200",
      "--auth",
      "off",
      ...args,
    ],
    opts.env ?? {},
  );
  const dir = opts.store ? undefined : mkdtempSync(join(tmpdir(), "spage-test-"));
  const store = opts.store ?? openSqliteStore({ path: join(dir ?? "", "spage.db") });
  const gateway = await buildApp({ config, store, version: "test" });
  const adminKey = config.access.enabled
    ? (await createApiKey(store, "test-admin", allScopes, "test")).apiKey
    : "";
  await gateway.app.listen({ host: "127.0.0.1", port: config.port });
  const addr = gateway.server.address();
  assert.ok(addr && typeof addr === "object");
  const port = addr.port;
  const url = `${config.tls ? "https" : "http"}://127.0.0.1:${port}`;
  return {
    gateway,
    config,
    port,
    url,
    adminKey,
    async close(waitMs = 2000) {
      const deadline = Date.now() + waitMs;
      while (
        Date.now() < deadline &&
        (gateway.bus.subscriberCount > 0 || gateway.server.openConnections > 0)
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const leaks = {
        subscriptions: gateway.bus.subscriberCount,
        connections: gateway.server.openConnections,
      };
      await gateway.shutdown();
      if (dir) rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(leaks, { subscriptions: 0, connections: 0 }, "test left streams or connections open");
    },
  };
}
