/**
 * The two gateways of the fast-path differential suite: one with default flags (fast path on) and
 * one with `--no-fast-path` (Connect's handler serves every call), started with the same other
 * flags, and how one scenario is played against one of them (setup, credentials, the exchange, the
 * follow-up, normalisation).
 */
import assert from "node:assert/strict";
import type { JsonValue } from "@bufbuild/protobuf";
import { type ExchangeBounds, exchange, type RawRequest } from "./differential-client.js";
import { type NormalisedAnswer, normaliseAnswer } from "./differential-normalise.js";
import type { Credential, PairName, Scenario, ScenarioSetup } from "./differential-scenario.js";
import { startTestServer, type TestServer } from "./test-server.js";

/** One gateway of a pair, with the keys made for it. */
export interface GatewayUnderTest {
  readonly label: "fast path" | "connect only";
  readonly server: TestServer;
  /** With auth on: an API key with every scope, and one with only tasks:read. Empty otherwise. */
  readonly keys: { readonly admin: string; readonly readOnly: string };
}

/** Two gateways that differ only in `--no-fast-path`. */
export interface GatewayPair {
  readonly name: PairName;
  readonly fast: GatewayUnderTest;
  readonly connectOnly: GatewayUnderTest;
}

/** A well-formed key (`spk_<16 hex>_<43 chars>`) that no gateway issued. */
const unknownKey = `spk_0123456789abcdef_${"A".repeat(43)}`;

/**
 * Starts both gateways of a pair with the same `flags`; the second also gets `--no-fast-path`. With
 * `selfCheck` the first gets it too: both sides are then Connect's handler, and any difference the
 * suite reports is nondeterminism its normalisation misses, not the fast path.
 */
export async function startPair(
  name: PairName,
  flags: readonly string[],
  selfCheck = false,
): Promise<GatewayPair> {
  const [fast, connectOnly] = await Promise.all([
    startGateway("fast path", selfCheck ? [...flags, "--no-fast-path"] : flags),
    startGateway("connect only", [...flags, "--no-fast-path"]),
  ]);
  // Guards against a pair that silently tests one configuration twice.
  assert.equal(fast.server.config.fastPath, !selfCheck, "the first gateway runs the fast path");
  assert.equal(connectOnly.server.config.fastPath, false, "--no-fast-path turns it off");
  return { name, fast, connectOnly };
}

async function startGateway(
  label: GatewayUnderTest["label"],
  flags: readonly string[],
): Promise<GatewayUnderTest> {
  const server = await startTestServer(flags);
  if (!server.adminKey) return { label, server, keys: { admin: "", readOnly: "" } };
  const created = await callJson(server, server.adminKey, "/spage.api.SpageAPI/CreateApiKey", {
    name: "differential read-only",
    scopes: ["tasks:read"],
  });
  const readOnly = (created as { apiKey?: string }).apiKey;
  assert.ok(readOnly, `CreateApiKey answered ${JSON.stringify(created)}`);
  return { label, server, keys: { admin: server.adminKey, readOnly } };
}

/** Bounds of every exchange of the suite (setup calls included). */
export const exchangeBounds: ExchangeBounds = { timeoutMs: 3000, settleMs: 500 };

/** Plays `scenario` against `gateway`: setup, then the request (and follow-up), normalised. */
export async function playScenario(gateway: GatewayUnderTest, scenario: Scenario): Promise<NormalisedAnswer> {
  await scenario.setup?.(setupFor(gateway));
  const request = withCredential(scenario.request, gateway, scenario.credential);
  const followUp = scenario.followUp && withCredential(scenario.followUp, gateway, scenario.credential);
  const { answer, followUp: followUpAnswer } = await exchange(
    scenario.transport,
    gateway.server.port,
    request,
    exchangeBounds,
    followUp,
  );
  const normalised = normaliseAnswer(answer, request.path);
  if (!followUp || !followUpAnswer) return normalised;
  return { ...normalised, followUp: normaliseAnswer(followUpAnswer, followUp.path) };
}

function withCredential(req: RawRequest, gateway: GatewayUnderTest, credential?: Credential): RawRequest {
  if (!credential) return req;
  const token = {
    admin: `Bearer ${gateway.keys.admin}`,
    "read-only": `Bearer ${gateway.keys.readOnly}`,
    "unknown-key": `Bearer ${unknownKey}`,
    malformed: "Basic dXNlcjpwYXNz",
  }[credential];
  return { ...req, headers: { ...req.headers, authorization: token } };
}

function setupFor(gateway: GatewayUnderTest): ScenarioSetup {
  return {
    async callJson(path, message) {
      await callJson(gateway.server, gateway.keys.admin, path, message);
    },
    async takeLastToken(path, message) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const answer = await send(gateway.server, gateway.keys.admin, path, message);
        if (answer.kind === "response" && answer.status !== 429) return;
        assert.ok(Date.now() < deadline, `setup call ${path} was refused for 10 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** A Connect JSON call over HTTP/1.1; returns the parsed answer, rejects unless it is a 200. */
export async function callJson(
  server: TestServer,
  key: string,
  path: string,
  message: JsonValue,
): Promise<JsonValue> {
  const answer = await send(server, key, path, message);
  assert.ok(
    answer.kind === "response" && answer.status === 200,
    `setup call ${path} failed: ${JSON.stringify(answer.kind === "response" ? answer.body.toString() : answer)}`,
  );
  return JSON.parse(answer.body.toString("utf8")) as JsonValue;
}

async function send(server: TestServer, key: string, path: string, message: JsonValue) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const body = Buffer.from(JSON.stringify(message));
  const { answer } = await exchange(
    "h1",
    server.port,
    { method: "POST", path, headers, body },
    exchangeBounds,
  );
  return answer;
}
