/**
 * Differential test of the fast path (unary calls, and WatchEvents over native gRPC): every scenario
 * of the corpus
 * (helpers/differential-scenarios.ts) sends the same raw request, over cleartext HTTP/2 or HTTP/1.1,
 * to a gateway with default flags (fast path on) and to one started with `--no-fast-path`
 * (Connect's handler serves every call), and the two normalised answers
 * (helpers/differential-normalise.ts says what is normalised and why) must be identical, unless
 * the scenario is listed in `intendedDifferences` with the reason.
 *
 * Two pairs of gateways run: "open" (auth off) and "auth" (auth on, tasks:cancel limited to 1 call
 * per second). Both get `--read-max-bytes 4096` and `--max-timeout-ms 60000`, so size and deadline
 * limits are cheap to reach. Every exchange is bounded (helpers/differential-pair.ts), every test
 * too; at the end both gateways of each pair must still answer a normal call, and the test
 * server's leak check must find no connection left open.
 *
 * SPAGE_DIFFERENTIAL_SELF_CHECK=1 starts both gateways of each pair with --no-fast-path: the suite
 * must then pass, which shows its normalisation hides every nondeterministic part of an answer.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { exchange } from "./helpers/differential-client.js";
import { describeDifference } from "./helpers/differential-diff.js";
import { seedTasks } from "./helpers/differential-fixtures.js";
import type { NormalisedAnswer } from "./helpers/differential-normalise.js";
import { exchangeBounds, type GatewayPair, playScenario, startPair } from "./helpers/differential-pair.js";
import { type PairName, type Scenario, unaryCall } from "./helpers/differential-scenario.js";
import { differentialScenarios } from "./helpers/differential-scenarios.js";
import { rpcCodesOf } from "./helpers/differential-summary.js";
import { maxTimeoutMs, readMaxBytes } from "./helpers/differential-wire-scenarios.js";

/**
 * Scenarios where the fast path answers differently on purpose: scenario name -> why. A difference
 * not listed here fails its scenario with a diff of both answers; an entry naming no scenario fails
 * the corpus check.
 */
/** Scenarios whose answers may differ, only in the fields named, and why. */
const drained =
  "the fast path reads and drops the rest of an over-limit body, so the client is not left stuck " +
  "on HTTP/2 flow control; Connect's handler leaves its request stream open (same answer otherwise)";
const intendedDifferences: ReadonlyMap<string, { reason: string; only: readonly string[] }> = new Map([
  [
    "grpc/h2 100 KiB message, then another call on the same session",
    { reason: drained, only: ["requestStuck"] },
  ],
  [
    "grpc-web/h2 100 KiB message, then another call on the same session",
    { reason: drained, only: ["requestStuck"] },
  ],
  [
    "connect-json/h2 100 KiB JSON body, then another call on the same session",
    { reason: drained, only: ["requestStuck"] },
  ],
]);

/** The answer without the fields a listed difference may change. */
function without<T extends object>(answer: T, fields: readonly string[]): Partial<T> {
  const copy = { ...answer } as Record<string, unknown>;
  for (const f of fields) delete copy[f];
  return copy as Partial<T>;
}

const commonFlags = [
  "--read-max-bytes",
  String(readMaxBytes),
  "--max-timeout-ms",
  String(maxTimeoutMs),
  // The test server's 200 ms keep-alive is announced as "timeout=0", which makes node's agent drop
  // every connection; 5 s lets HTTP/1.1 follow-ups show whether a connection stays usable.
  "--keep-alive-timeout-ms",
  "5000",
];

const pairFlags: Readonly<Record<PairName, readonly string[]>> = {
  open: commonFlags,
  // Failed authentications are limited per address (20 a minute by default); the corpus has fewer.
  auth: [...commonFlags, "--auth", "on", "--rate-limits", "tasks:cancel=1/1"],
};

/** Both sides Connect's handler: checks the normalisation rather than the fast path. */
const selfCheck = process.env.SPAGE_DIFFERENTIAL_SELF_CHECK === "1";

/** Bound of one scenario: both gateways, setup and follow-ups included. */
const scenarioTimeoutMs = 15_000;

/** One scenario's normalised answers. */
interface Played {
  readonly scenario: Scenario;
  readonly fast: NormalisedAnswer;
  readonly connectOnly: NormalisedAnswer;
}

describe("fast path differential: --fast-path on and off answer alike", () => {
  const pairs = new Map<PairName, GatewayPair>();
  const played = new Map<string, Played>();

  before(async () => {
    const started = await Promise.allSettled(
      (Object.keys(pairFlags) as PairName[]).map((name) => startPair(name, pairFlags[name], selfCheck)),
    );
    for (const s of started) if (s.status === "fulfilled") pairs.set(s.value.name, s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    for (const pair of pairs.values()) {
      for (const gw of [pair.fast, pair.connectOnly]) {
        await seedTasks(gw.server, gw.keys.admin, { listing: pair.name === "open" });
      }
    }
  });

  after(async () => {
    await Promise.all(
      [...pairs.values()].flatMap((p) => [p.fast.server.close(), p.connectOnly.server.close()]),
    );
  });

  it("has a well-formed corpus of at least 80 scenarios", () => {
    const names = differentialScenarios.map((s) => s.name);
    assert.ok(names.length >= 80, `${names.length} scenarios`);
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      "scenario names are unique",
    );
    const stale = [...intendedDifferences.keys()].filter((n) => !names.includes(n));
    assert.deepEqual(stale, [], "every intended difference names a scenario");
  });

  for (const scenario of differentialScenarios) {
    it(scenario.name, { timeout: scenarioTimeoutMs }, async (t) => {
      const pair = pairs.get(scenario.pair);
      assert.ok(pair, `pair ${scenario.pair} started`);
      // One after the other, not at once: timing-sensitive scenarios (rate limits) see the same load.
      const fast = await playScenario(pair.fast, scenario);
      const connectOnly = await playScenario(pair.connectOnly, scenario);
      played.set(scenario.name, { scenario, fast, connectOnly });
      if (isDeepStrictEqual(fast, connectOnly)) return;
      const intended = intendedDifferences.get(scenario.name);
      if (intended && isDeepStrictEqual(without(fast, intended.only), without(connectOnly, intended.only))) {
        t.diagnostic(`differs as intended (${intended.reason}):\n${describeDifference(fast, connectOnly)}`);
        return;
      }
      assert.fail(
        `${scenario.name}: the fast path and Connect's handler answer differently\n` +
          describeDifference(fast, connectOnly),
      );
    });
  }

  it("is not vacuous: every scenario answered as expected, over every protocol, with many codes", (t) => {
    assert.equal(played.size, differentialScenarios.length, "every scenario was played");
    const unexpected: string[] = [];
    for (const { scenario, fast, connectOnly } of played.values()) {
      for (const answer of [fast, connectOnly]) {
        const ok =
          answer.outcome === (scenario.expect ?? "response") &&
          (!scenario.followUp || answer.followUp?.outcome === "response");
        if (!ok)
          unexpected.push(`${scenario.name}: ${answer.outcome}, follow-up ${answer.followUp?.outcome}`);
      }
    }
    assert.deepEqual(unexpected, [], "answers of the wrong kind");

    const answered = [...played.values()].filter((p) => p.connectOnly.outcome === "response");
    const covered = new Set(answered.map((p) => `${p.scenario.protocol}/${p.scenario.transport}`));
    for (const protocol of ["grpc", "grpc-web", "connect-proto", "connect-json", "connect-get"]) {
      for (const transport of ["h2", "h1"])
        assert.ok(covered.has(`${protocol}/${transport}`), `${protocol}/${transport}`);
    }
    const httpStatuses = new Set(answered.map((p) => p.connectOnly.status));
    assert.ok(httpStatuses.size >= 8, `HTTP statuses seen: ${[...httpStatuses].join(", ")}`);
    const codes = new Set(answered.flatMap((p) => rpcCodesOf(p.connectOnly)));
    assert.ok(codes.size >= 8, `RPC codes seen: ${[...codes].join(", ")}`);
    t.diagnostic(
      `HTTP statuses: ${[...httpStatuses].sort().join(", ")}; RPC codes: ${[...codes].sort().join(", ")}`,
    );
  });

  it("leaves both gateways of each pair serving normal calls", async () => {
    const bounds = exchangeBounds;
    for (const pair of pairs.values()) {
      for (const gw of [pair.fast, pair.connectOnly]) {
        const grpc = await exchange(
          "h2",
          gw.server.port,
          unaryCall("grpc", SpageAPI.method.healthCheck, {}),
          bounds,
        );
        assert.ok(grpc.answer.kind === "response", `${pair.name}/${gw.label}: ${grpc.answer.kind}`);
        assert.equal(grpc.answer.trailers["grpc-status"], "0");
        const json = await exchange(
          "h1",
          gw.server.port,
          unaryCall("connect-json", SpageAPI.method.healthCheck, {}),
          bounds,
        );
        assert.ok(json.answer.kind === "response", `${pair.name}/${gw.label}: ${json.answer.kind}`);
        assert.equal(json.answer.status, 200);
      }
    }
  });
});
