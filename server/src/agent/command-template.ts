/**
 * The command line an agent runs for a task: by default Spage's own `spage run`, pointed back at the
 * gateway with --daemon-grpc and --task-id; or an operator's template run by the shell, with
 * placeholders replaced by shell-quoted values. A play (the play era) gets its play id with
 * `--play-id` (a template passes it with {play_id}); the agent also sets SPAGE_DAEMON_PLAY_ID.
 */

/** Values a template may use. */
export interface TaskCommandValues {
  /** The task's id; for a play, also its play id. */
  readonly taskId: string;
  readonly playbook: string;
  readonly inventory: string;
  /** The task's variables as a JSON object text. */
  readonly variablesJson: string;
  /** The gateway as host:port, the form Spage's --daemon-grpc takes. */
  readonly endpoint: string;
  /** Hosts the run is limited to, comma-separated (a retry of failed hosts); "" for all. */
  readonly limit?: string;
}

/** Placeholders understood in `--command` templates. */
export const placeholders = [
  "task_id",
  "play_id",
  "playbook",
  "inventory",
  "endpoint",
  "variables_json",
  "limit",
] as const;

/** Quotes a value for POSIX sh: single quotes, with embedded single quotes closed and escaped. */
export function shellQuote(value: string): string {
  if (value !== "" && /^[A-Za-z0-9_./:=@%+,-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/**
 * The default, as Spage's own `run` takes it: `spage run <playbook> [-i <inventory>] [-e
 * <variables>] [--limit <hosts>] --daemon-grpc <endpoint>` (--limit as ansible-playbook takes it), then `--task-id <id>` for a task-era core or
 * `--play-id <id>` for a core of today (the play era).
 */
export function defaultSpageCommand(v: TaskCommandValues, era: "task" | "play" = "task"): string {
  const parts = ["spage", "run", shellQuote(v.playbook)];
  if (v.inventory) parts.push("-i", shellQuote(v.inventory));
  if (v.variablesJson && v.variablesJson !== "{}") parts.push("-e", shellQuote(v.variablesJson));
  if (v.limit) parts.push("--limit", shellQuote(v.limit));
  parts.push(
    "--daemon-grpc",
    shellQuote(v.endpoint),
    era === "play" ? "--play-id" : "--task-id",
    shellQuote(v.taskId),
  );
  return parts.join(" ");
}

/** Fills a template: each `{name}` placeholder becomes its shell-quoted value; others are errors. */
export function renderTemplate(template: string, v: TaskCommandValues): string {
  const values: Record<(typeof placeholders)[number], string> = {
    task_id: v.taskId,
    play_id: v.taskId,
    playbook: v.playbook,
    inventory: v.inventory,
    endpoint: v.endpoint,
    variables_json: v.variablesJson,
    limit: v.limit ?? "",
  };
  return template.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    if (!(name in values))
      throw new Error(
        `unknown placeholder ${whole} in --command; use ${placeholders.map((p) => `{${p}}`).join(", ")}`,
      );
    return shellQuote(values[name as keyof typeof values]);
  });
}

/** Checks a template's placeholders up front, so a typo fails at start, not at the first task. */
export function checkTemplate(template: string): void {
  renderTemplate(template, { taskId: "", playbook: "", inventory: "", variablesJson: "{}", endpoint: "" });
}
