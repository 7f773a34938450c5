/**
 * The gateway as an operator runs it: a real process of the bundle `npm start` runs (built from
 * main.ts), configured by flags and SPAGE_* variables, logging every RPC, and stopping cleanly on
 * SIGTERM.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { gatewayBundle, startGatewayProcess } from "./helpers/gateway-process.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

describe("gateway process", () => {
  it("lists every option with --help", () => {
    const r = spawnSync(process.execPath, [gatewayBundle(), "--help"], {
      cwd: root,
      encoding: "utf8",
    });
    assert.equal(r.status, 0);
    for (const flag of [
      "--host",
      "--port",
      "--tls-cert",
      "--tls-key",
      "--cors-origins",
      "--read-max-bytes",
      "--max-timeout-ms",
    ]) {
      assert.ok(r.stdout.includes(flag), `--help lists ${flag}`);
    }
    assert.match(r.stdout, /SPAGE_PORT/);
  });

  it("refuses a bad value with a message naming the flag and what is expected", () => {
    const bad = spawnSync(process.execPath, [gatewayBundle(), "--port", "http"], {
      cwd: root,
      encoding: "utf8",
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /invalid --port "http": expected a whole number from 0 to 65535/);
    const env = spawnSync(process.execPath, [gatewayBundle()], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, SPAGE_READ_MAX_BYTES: "-5" },
    });
    assert.equal(env.status, 2);
    assert.match(env.stderr, /invalid SPAGE_READ_MAX_BYTES "-5"/);
    const unknown = spawnSync(process.execPath, [gatewayBundle(), "--prot", "1"], {
      cwd: root,
      encoding: "utf8",
    });
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /--prot.*--help/s);
  });

  it("logs each RPC with method, code and duration, and exits 0 on SIGTERM", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "spage-proc-"));
    const gw = startGatewayProcess(["--port", "0", "--data-dir", dataDir], {
      SPAGE_HOST: "127.0.0.1",
      SPAGE_LOG_LEVEL: "info",
    });
    try {
      const port = await gw.port;
      const res = await fetch(`http://127.0.0.1:${port}/spage.api.SpageAPI/GetTaskStatus`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ taskId: "no-such-task" }),
      });
      assert.equal(res.status, 404);
      const line = await gw.waitForLog((l) => l.rpc === "spage.api.SpageAPI/GetTaskStatus");
      assert.equal(line.code, "not_found");
      assert.equal(typeof line.ms, "number");
      gw.child.kill("SIGTERM");
      assert.equal(await gw.exited, 0);
      await gw.waitForLog((l) => l.msg === "stopped");
    } finally {
      gw.child.kill("SIGKILL");
    }
  });
});
