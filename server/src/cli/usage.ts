/**
 * The usage text of every command, printed by `spage-gateway <command> --help` (or `-h`) without
 * calling a gateway or needing a token, and the overview `spage-gateway --help` prints.
 */
import { allScopes } from "../auth/scopes.js";

const client = `Client options:
  --endpoint URL   the gateway (SPAGE_ENDPOINT; default http://127.0.0.1:9091)
  --token TOKEN    an API key or session token, sent as a bearer token (SPAGE_TOKEN)
  --tls-ca FILE    PEM CA certificates to trust the https:// gateway by (SPAGE_TLS_CA)
  --tls-client-cert FILE, --tls-client-key FILE
                   a client certificate and its key to authenticate with over mutual TLS, instead
                   of a token (SPAGE_TLS_CLIENT_CERT, SPAGE_TLS_CLIENT_KEY)
  --json           print the answer as JSON, for scripts
  --help, -h       show this help`;

const store = `Where: --data-dir DIR (SQLite) or --database-url postgres://... [--database-schema S]
(SPAGE_DATABASE_URL, SPAGE_DATABASE_SCHEMA) works on the store directly, with the gateway running or
not; otherwise the gateway at --endpoint is called with --token (an admin key or token; SPAGE_TOKEN).`;

/** `keys`: API key administration. */
export const keysUsage = `Usage: spage-gateway keys create --name NAME --scopes SCOPE[,SCOPE...] [--quiet]
       spage-gateway keys list [--all]
       spage-gateway keys revoke ID

Scopes: ${allScopes.join(", ")}
${store}`;

/** `audit`: the audit log. */
export const auditUsage = `Usage: spage-gateway audit list [--after SEQ] [--limit N] [--principal P] [--task ID]
       spage-gateway audit verify

verify walks the whole log and checks every record's hash and link to the one before; it exits 1
and names the first broken record when one was altered, removed or inserted. Records cut from the
end leave no broken link: compare the last hash it prints with one kept elsewhere.
${store}`;

/** `sessions`: single sign-on sessions. */
export const sessionsUsage = `Usage: spage-gateway sessions revoke --subject SUB [--issuer URL]

Ends every session token of a person signed in through single sign-on (their identity provider's
"sub" claim; the audit log names them person:<issuer>#<subject>), from every issuer unless --issuer
says which. Their dashboards are signed out at their next call. Their provider's own access tokens
keep working until they expire: stop them at the provider.
${store}`;

/** `store`: moving a store. */
export const storeUsage = `Usage: spage-gateway store copy --from PATH --to postgres://... [--schema NAME]

Copies a SQLite store (the spage.db file, or the --data-dir holding it) into an empty PostgreSQL
schema (default public; SPAGE_DATABASE_URL and SPAGE_DATABASE_SCHEMA give the defaults): every task,
event, daemon, key, session and audit record, with the same ids and sequences, in one transaction.
The audit chain is verified before anything is committed. Stop the gateway first; then start it
with --database-url and --database-schema.`;

/** Usage of each command, by name. */
export const commandUsage: Readonly<Record<string, string>> = {
  agent: `Usage: spage-gateway agent [--capacity N] [--labels k=v,...] [--daemon-id ID] [--command TEMPLATE]
                           [--kill-grace-ms MS] [--core-relay on|off] [--core-era auto|task|play]
                           [--endpoint URL] [--token TOKEN] [--tls-ca FILE]
                           [--tls-client-cert FILE --tls-client-key FILE]

Runs a daemon until SIGTERM or SIGINT: it takes the tasks the gateway hands it and runs each as a
process, streaming its output back and reporting its exit code.

  --capacity N         tasks run at once, 1 to 1000 (SPAGE_AGENT_CAPACITY; default 1)
  --labels k=v,...     labels tasks can ask for with payload target_labels (SPAGE_AGENT_LABELS)
  --daemon-id ID       stable id of this daemon (default <hostname>-<pid>)
  --command TEMPLATE   shell command run for each task instead of Spage's own
                       "spage run <playbook> -i <inventory> -e <variables> --daemon-grpc <endpoint>
                       --task-id <id>" (SPAGE_AGENT_COMMAND), with "--limit <hosts>" when the task
                       is limited to some hosts (a retry of failed hosts); {task_id}, {play_id}
                       (the same id), {playbook}, {inventory}, {endpoint}, {variables_json} and
                       {limit} (comma-separated hosts, or empty) are replaced by shell-quoted values;
                       the process also gets SPAGE_LIMIT when the task is limited
  --kill-grace-ms MS   time from SIGTERM to SIGKILL when a task is canceled (default 10000)
  --core-relay on|off  on (default): the cores it starts report to the agent's local relay
                       ({endpoint} is its 127.0.0.1 address), which passes their calls on with the
                       agent's credentials for the tasks it was given only; off: {endpoint} is the
                       gateway, and cores call it without credentials (SPAGE_AGENT_CORE_RELAY)
  --core-era E         which SpageExecution methods the cores speak (SPAGE_AGENT_CORE_ERA): auto
                       (default) by the task, a play (ExecutePlay) in the play era of today's Spage
                       and anything else in the task era; task or play for every task. A play-era
                       core is run as 'spage run PLAYBOOK ... --daemon-grpc {endpoint} --play-id ID'
                       (also SPAGE_DAEMON_PLAY_ID and SPAGE_DAEMON_ENDPOINT in its environment); a
                       --command template passes the id with {play_id}
  --endpoint, --token  as for the client commands; the token is also passed to the task's process
                       as SPAGE_TOKEN
  --tls-ca, --tls-client-cert, --tls-client-key
                       as for the client commands: with a client certificate the gateway maps to
                       scope "agent" (--client-cert-scopes), the daemon needs no token on disk`,
  submit: `Usage: spage-gateway submit (--playbook PATH | --type TYPE) [options]

Submits a task and prints its id.

  --playbook PATH      the playbook to run (type "playbook")
  --inventory INV      its inventory
  --var k=v            an extra variable (repeat for more)
  --type TYPE          the task's type when it is not a playbook
  --priority P         low, normal (default), high or critical
  --labels k=v,...     only daemons carrying these labels may run it
  --payload k=v        a payload entry (repeat for more)
  --metadata k=v       a label kept with the task (repeat for more)
  --timeout SECONDS    run-time limit (0: none)
  --on-lost POLICY     fail (default) or requeue, when its daemon vanishes mid-run
  --max-attempts N     most attempts under requeue (default 3)
  --id ID              the task id (default: generated); the same request again returns the same task
  --after ID           run only once task ID has COMPLETED (repeat, or comma-separate, for more);
                       it waits as WAITING, and is SKIPPED or CANCELED if ID ends otherwise
  --workflow ID        put the task in this workflow
${client}`,
  "submit-workflow": `Usage: spage-gateway submit-workflow FILE.yaml

Submits every task of a workflow file at once (all or none) and prints the workflow id and the task
ids. The file:

  workflow: rollout-42          # optional; generated when absent
  tasks:
    - id: provision
      payload: {playbook: provision.yml, inventory: hosts.ini}
    - id: configure
      after: [provision]        # runs once provision COMPLETED
      payload: {playbook: configure.yml}
    - id: deploy
      type: playbook            # the default
      after: configure
      priority: high            # low, normal, high, critical
      metadata: {team: web}
      timeout_seconds: 600      # also on_lost, max_attempts

A task whose dependency fails ends SKIPPED, one whose dependency is canceled ends CANCELED, and so
does everything after it.
${client}`,
  workflow: `Usage: spage-gateway workflow show WORKFLOW_ID

Draws a workflow's tasks as a tree of dependencies, each with its state and what it waits for.
${client}`,
  retry: `Usage: spage-gateway retry TASK_ID [--failed-hosts] [--id NEW_ID]

Starts a new attempt of a finished task with the same input and prints the new task's id.

  --failed-hosts       only on the hosts that failed in its last run (passed to the run as --limit)
  --id NEW_ID          the new task's id (default: generated)
${client}`,
  get: `Usage: spage-gateway get TASK_ID

Shows one task: its state, per-host recap (task era) or steps (a play), result and error.
${client}`,
  list: `Usage: spage-gateway list [--status S] [--type T] [--prefix P] [--workflow W] [--label k=v] [--limit N]
                           [--oldest] [--page-token T]

Lists tasks, newest first, with the total that match.

  --status S           e.g. running, failed
  --type T             the task type
  --prefix P           ids starting with P
  --workflow W         the tasks of workflow W
  --label k=v          tasks with this metadata label
  --limit N            tasks per page, 1 to 1000 (default 50)
  --oldest             oldest first
  --page-token T       the next page, as the previous one printed
${client}`,
  cancel: `Usage: spage-gateway cancel TASK_ID [--reason TEXT]
       spage-gateway cancel --filter k=v[,k=v...] [--all] [--limit N] [--dry-run] [--yes] [--reason TEXT]

Cancels a task: a pending or waiting one at once, a running one once its runner confirms.

With --filter, cancels every unfinished task that matches, at most --limit (1 to 1000, default 100)
a call, oldest first. It first counts them and asks before cancelling (--yes: do not ask; without a
terminal --yes is required), then prints each task's outcome.

  --filter k=v,...     status, type, priority, workflow, id-prefix, label (label=key=value)
  --all                match every unfinished task (a filter that sets nothing needs it)
  --dry-run            only list what would be canceled
${client}`,
  watch: `Usage: spage-gateway watch [--task ID] [--type T ...] [--after SEQ] [--until-end]

Follows events live, like tail -f, and resumes after reconnects.

  --task ID            only this task's events
  --type T             only events of this type (repeat for more)
  --after SEQ          start after this event sequence (default: from the beginning)
  --until-end          with --task: exit when the task ends, 0 if it COMPLETED and 1 otherwise
${client}`,
  keys: keysUsage,
  sessions: sessionsUsage,
  audit: auditUsage,
  store: storeUsage,
};

/** `spage-gateway --help`. */
export const overviewUsage = `Usage: spage-gateway [command] [options]

Commands:
  serve     run the gateway (the default; see spage-gateway serve --help)
  agent     run a daemon: --capacity N [--command TEMPLATE] [--labels k=v,...] [--daemon-id ID]
  submit    submit a task: --type T | --playbook P [--inventory I] [--var k=v ...] [--priority P]
            [--labels k=v,...] [--timeout SECONDS] [--on-lost fail|requeue] [--max-attempts N] [--id ID]
            [--after ID ...] [--workflow W]
  submit-workflow FILE.yaml   submit a workflow's tasks and their dependencies at once
  get ID    show a task
  list      list tasks: [--status S] [--type T] [--prefix P] [--workflow W] [--label k=v] [--limit N] [--oldest]
  cancel ID cancel a task [--reason TEXT]; cancel --filter k=v,... [--yes]: cancel many
  retry ID  a new attempt of a finished task [--failed-hosts] [--id NEW_ID]
  workflow  show WORKFLOW_ID: a workflow's tasks as a tree
  watch     follow events live: [--task ID] [--type T ...] [--after SEQ] [--until-end]
  keys      API keys: create --name N --scopes a,b [--quiet] | list [--all] | revoke ID
  sessions  revoke --subject SUB [--issuer URL]: sign a single sign-on person out everywhere
  store     copy --from DATA_DIR --to postgres://... [--schema S]: move a SQLite store to PostgreSQL
  audit     the audit log: list [--after SEQ] [--principal P] [--task ID] | verify
            (keys, sessions and audit work on the store with --data-dir DIR or --database-url URL,
            or through the gateway)

Every command prints its own options with --help.
Client options: --endpoint URL (SPAGE_ENDPOINT), --token TOKEN (SPAGE_TOKEN), --json,
--tls-ca FILE, --tls-client-cert FILE --tls-client-key FILE (mutual TLS)`;

/** Whether `argv` asks for help (before any `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}
