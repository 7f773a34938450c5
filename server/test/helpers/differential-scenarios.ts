/**
 * The corpus of the fast-path differential suite (fast-path-differential.test.ts), in the order it
 * runs: what RPCs answer, then the wire around valid messages, then wrong requests and abandoned
 * calls last, so that nothing a scenario leaves behind on the server can change an earlier answer.
 */
import { malformedScenarios } from "./differential-malformed-scenarios.js";
import { rpcScenarios } from "./differential-rpc-scenarios.js";
import type { Scenario } from "./differential-scenario.js";
import { streamScenarios } from "./differential-stream-scenarios.js";
import { wireScenarios } from "./differential-wire-scenarios.js";

/** Every scenario; names are unique. */
export const differentialScenarios: readonly Scenario[] = [
  ...rpcScenarios,
  ...streamScenarios,
  ...wireScenarios,
  ...malformedScenarios,
];
