/**
 * `spage-gateway`: the gateway (serve, the default) and its command-line tools: agent, submit, get,
 * list, cancel, watch, keys, audit. Client commands talk to --endpoint (SPAGE_ENDPOINT, default
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
import { cancelCommand, getCommand, listCommand, submitCommand } from "./task-commands.js";
import { watchCommand } from "./watch-command.js";

const usage = `Usage: spage-gateway [command] [options]

Commands:
  serve     run the gateway (the default; see spage-gateway serve --help)
  agent     run a daemon: --capacity N [--command TEMPLATE] [--labels k=v,...] [--daemon-id ID]
  submit    submit a task: --type T | --playbook P [--inventory I] [--var k=v ...] [--priority P]
            [--labels k=v,...] [--timeout SECONDS] [--on-lost fail|requeue] [--max-attempts N] [--id ID]
  get ID    show a task
  list      list tasks: [--status S] [--type T] [--prefix P] [--limit N] [--oldest]
  cancel ID cancel a task [--reason TEXT]
  watch     follow events live: [--task ID] [--type T ...] [--after SEQ] [--until-end]
  keys      API keys: create --name N --scopes a,b [--quiet] | list [--all] | revoke ID
  audit     the audit log: list [--after SEQ] [--principal P] [--task ID] | verify
            (keys and audit work on the store with --data-dir DIR, or through the gateway)

Client options: --endpoint URL (SPAGE_ENDPOINT), --token TOKEN (SPAGE_TOKEN), --json`;

/** Runs the command line; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  const out = (t: string) => process.stdout.write(`${t}\n`);
  const err = (t: string) => process.stderr.write(`${t}\n`);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  try {
    switch (first) {
      case undefined:
        return await serve([]);
      case "serve":
        return await serve(rest);
      case "help":
      case "--help":
      case "-h":
        out(usage);
        return 0;
      case "submit":
        return await submitCommand(rest, out);
      case "get":
        return await getCommand(rest, out);
      case "list":
        return await listCommand(rest, out);
      case "cancel":
        return await cancelCommand(rest, out);
      case "watch":
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        return await watchCommand(rest, out, err, stop.signal);
      case "keys":
        return await keysCommand(rest, out);
      case "audit":
        return await auditCommand(rest, out, err);
      case "agent":
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        return await agentCommand(rest, err, stop.signal);
      default:
        if (first.startsWith("--")) return await serve(argv);
        err(`spage-gateway: unknown command "${first}"\n\n${usage}`);
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
