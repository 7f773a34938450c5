/**
 * `store copy --from <sqlite file or data dir> --to <postgres url> [--schema NAME]`: moves a
 * single-machine history to PostgreSQL for an operator who outgrows one machine (store/
 * copy-to-postgres.ts). Run it with the gateway stopped; the target schema must be empty.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { CopyRefused, copySqliteToPostgres } from "../store/copy-to-postgres.js";
import { redactUrl } from "../store/open-store.js";
import { isPostgresUrl, isSchemaName } from "../store/postgres/postgres-store.js";
import { parseCommand, UsageError } from "./cli-args.js";
import { storeUsage } from "./usage.js";

/** `store`: runs one store subcommand. */
export async function storeCommand(
  argv: readonly string[],
  out: (t: string) => void,
  err: (t: string) => void,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "copy") {
    if (sub === undefined) {
      out(storeUsage);
      return 2;
    }
    throw new UsageError(`unknown store subcommand "${sub}": use copy`);
  }
  const { values: v } = parseCommand(rest, {
    from: { type: "string" },
    to: { type: "string" },
    schema: { type: "string" },
  });
  const from = v.from as string | undefined;
  const to = (v.to as string | undefined) ?? process.env.SPAGE_DATABASE_URL;
  const schema = (v.schema as string | undefined) ?? process.env.SPAGE_DATABASE_SCHEMA ?? "public";
  if (!from)
    throw new UsageError("store copy needs --from (the SQLite spage.db, or the --data-dir holding it)");
  if (!to || !isPostgresUrl(to)) {
    throw new UsageError("store copy needs --to postgres://user@host:port/database (or SPAGE_DATABASE_URL)");
  }
  if (!isSchemaName(schema)) {
    throw new UsageError(`invalid --schema "${schema}": lower-case letters, digits and _`);
  }
  const path = existsSync(from) && statSync(from).isDirectory() ? join(from, "spage.db") : from;
  if (!existsSync(path)) throw new UsageError(`no SQLite database at ${path}`);
  try {
    const r = await copySqliteToPostgres(path, to, schema);
    out(
      `Copied ${r.rows.tasks} tasks, ${r.rows.events} events (up to sequence ${r.lastSequence}), ${r.rows.daemons} daemons, ` +
        `${r.rows.api_keys} API keys, ${r.rows.sessions} sessions and ${r.rows.audit_log} audit records ` +
        `(chain verified) from ${path} to ${redactUrl(to)} schema ${schema}.`,
    );
    out(`Start the gateway with --database-url ${redactUrl(to)} --database-schema ${schema}.`);
    return 0;
  } catch (e) {
    if (e instanceof CopyRefused) {
      err(`spage-gateway store copy: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
