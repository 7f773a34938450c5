/**
 * `spage-gateway <command> --help` (and `-h`) prints that command's usage and exits 0 without
 * calling a gateway or needing a token: the endpoint here points at a port nothing listens on, so
 * any call would fail.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../../bin/spage-gateway.js", import.meta.url));

function run(args: readonly string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, SPAGE_ENDPOINT: "http://127.0.0.1:1" };
  delete env.SPAGE_TOKEN;
  return spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env, timeout: 30_000 });
}

describe("command-line help", () => {
  const commands = [
    "agent",
    "submit",
    "submit-workflow",
    "get",
    "list",
    "cancel",
    "retry",
    "workflow",
    "watch",
    "keys",
    "sessions",
    "audit",
    "store",
  ];
  for (const command of commands) {
    it(`${command} --help and -h print its usage and exit 0`, () => {
      for (const flag of ["--help", "-h"]) {
        const r = run([command, flag]);
        assert.equal(r.status, 0, `${command} ${flag}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^Usage: spage-gateway ${command}\\b`), r.stdout);
        assert.equal(r.stderr, "");
      }
    });
  }

  it("help after a subcommand or other flags is still help", () => {
    for (const args of [
      ["keys", "create", "--help"],
      ["audit", "verify", "-h"],
      ["get", "some-id", "--help"],
      ["submit", "--playbook", "site.yml", "--help"],
    ]) {
      const r = run(args);
      assert.equal(r.status, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: spage-gateway /, r.stdout);
    }
  });

  it("without --help a command does call the gateway (and says it cannot reach it)", () => {
    const r = run(["get", "some-id"]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /^spage-gateway get: unavailable: /);
  });

  it("the overview names every command and points at their help", () => {
    const r = run(["--help"]);
    assert.equal(r.status, 0);
    for (const command of commands) assert.match(r.stdout, new RegExp(`^  ${command}\\b`, "m"));
    assert.match(r.stdout, /Every command prints its own options with --help/);
  });
});
