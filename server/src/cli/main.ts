/**
 * `spage-gateway`: the gateway (serve, the default) and its command-line tools: agent, submit,
 * submit-workflow, get, list, cancel, retry, workflow, watch, keys, sessions, audit. Client commands talk to --endpoint (SPAGE_ENDPOINT, default
 * http://127.0.0.1:9091), print for people by default and JSON with --json.
 */
import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { DomainError } from "../domain/errors.js";
import { serve } from "../main.js";
import { agentCommand } from "./agent-command.js";
import { auditCommand } from "./audit-commands.js";
import { UsageError } from "./cli-args.js";
import { keysCommand } from "./key-commands.js";
import { sessionsCommand } from "./session-commands.js";
import { storeCommand } from "./store-command.js";
import { cancelCommand, getCommand, listCommand, submitCommand } from "./task-commands.js";
import { commandUsage, overviewUsage, wantsHelp } from "./usage.js";
import { watchCommand } from "./watch-command.js";
import { retryCommand, submitWorkflowCommand, workflowCommand } from "./workflow-commands.js";

/** Runs the command line; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  const out = (t: string) => process.stdout.write(`${t}\n`);
  const err = (t: string) => process.stderr.write(`${t}\n`);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  // A command's --help prints its usage and nothing else: no gateway, no token needed.
  const help = first === undefined ? undefined : commandUsage[first];
  if (help !== undefined && wantsHelp(rest)) {
    out(help);
    return 0;
  }
  try {
    switch (first) {
      case undefined:
        return await serve([]);
      case "serve":
        return await serve(rest);
      case "help":
      case "--help":
      case "-h":
        out(overviewUsage);
        return 0;
      case "submit":
        return await submitCommand(rest, out);
      case "get":
        return await getCommand(rest, out);
      case "list":
        return await listCommand(rest, out);
      case "cancel":
        return await cancelCommand(rest, out);
      case "submit-workflow":
        return await submitWorkflowCommand(rest, out);
      case "workflow":
        return await workflowCommand(rest, out);
      case "retry":
        return await retryCommand(rest, out);
      case "watch":
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        return await watchCommand(rest, out, err, stop.signal);
      case "keys":
        return await keysCommand(rest, out);
      case "sessions":
        return await sessionsCommand(rest, out);
      case "audit":
        return await auditCommand(rest, out, err);
      case "store":
        return await storeCommand(rest, out, err);
      case "agent":
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        return await agentCommand(rest, err, stop.signal);
      default:
        if (first.startsWith("--")) return await serve(argv);
        err(`spage-gateway: unknown command "${first}"\n\n${overviewUsage}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`spage-gateway ${first}: ${e.message}`);
      return 2;
    }
    if (e instanceof DomainError) {
      err(`spage-gateway ${first}: ${e.kind}: ${e.message}`);
      return 1;
    }
    if (e instanceof ConnectError) {
      err(`spage-gateway ${first}: ${codeToString(e.code)}: ${e.rawMessage}`);
      return 1;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
