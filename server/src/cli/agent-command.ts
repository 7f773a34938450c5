/**
 * `agent`: runs the reference daemon until SIGTERM or SIGINT.
 */
import { hostname } from "node:os";
import { Agent } from "../agent/agent.js";
import { checkTemplate } from "../agent/command-template.js";
import { gatewayVersion } from "../version.js";
import { intFlag, parseCommand, UsageError } from "./cli-args.js";

/** Runs the agent; resolves with the exit code once stopped. */
export async function agentCommand(
  argv: readonly string[],
  err: (text: string) => void,
  signal: AbortSignal,
): Promise<number> {
  const { values: v, common } = parseCommand(argv, {
    capacity: { type: "string" },
    command: { type: "string" },
    labels: { type: "string" },
    "daemon-id": { type: "string" },
    "kill-grace-ms": { type: "string" },
    "core-relay": { type: "string" },
    "core-era": { type: "string" },
  });
  const relay = String(v["core-relay"] ?? process.env.SPAGE_AGENT_CORE_RELAY ?? "on");
  if (relay !== "on" && relay !== "off") {
    throw new UsageError(`invalid --core-relay "${relay}": expected on or off`);
  }
  const coreEra = String(v["core-era"] ?? process.env.SPAGE_AGENT_CORE_ERA ?? "auto");
  if (coreEra !== "auto" && coreEra !== "task" && coreEra !== "play") {
    throw new UsageError(`invalid --core-era "${coreEra}": expected auto, task or play`);
  }
  const command = (v.command as string | undefined) ?? process.env.SPAGE_AGENT_COMMAND;
  if (command) {
    try {
      checkTemplate(command);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const labels: Record<string, string> = {};
  for (const part of String(v.labels ?? process.env.SPAGE_AGENT_LABELS ?? "")
    .split(",")
    .filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --labels entry "${part}": expected key=value`);
    labels[part.slice(0, i)] = part.slice(i + 1);
  }
  const agent = new Agent({
    endpoint: common.endpoint,
    token: common.token || undefined,
    tls: common.tls,
    daemonId: (v["daemon-id"] as string | undefined) ?? `${hostname()}-${process.pid}`,
    hostname: hostname(),
    version: gatewayVersion,
    capacity: intFlag("capacity", v.capacity ?? process.env.SPAGE_AGENT_CAPACITY, 1, 1000, 1),
    labels,
    command,
    killGraceMs: intFlag("kill-grace-ms", v["kill-grace-ms"], 0, 600_000, 10_000),
    coreRelay: relay === "on",
    coreEra,
    log: (level, msg, fields) =>
      err(JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields })),
  });
  signal.addEventListener("abort", () => void agent.stop(), { once: true });
  await agent.run();
  return 0;
}
