/**
 * Numbered, forward-only SQL migrations for the PostgreSQL store. Files named `NNN_name.sql` in
 * migrations/postgres/ run once each, in order, at open: all that are missing in one transaction
 * holding an advisory lock on the schema, so gateways starting at once on the same schema migrate it
 * exactly once (the others wait, then find nothing to do). A schema migrated by a newer gateway is
 * refused, naming both versions.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { inInstallDir } from "../../install-dir.js";

const migrationsDir = inInstallDir("server", "src", "store", "migrations", "postgres");

/** A migration file. */
export interface PostgresMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** The migrations shipped with the gateway, in order. */
export function loadPostgresMigrations(): PostgresMigration[] {
  return readdirSync(migrationsDir)
    .filter((f) => /^\d+_[\w-]+\.sql$/.test(f))
    .map((f) => ({
      version: Number(f.split("_")[0]),
      name: f,
      sql: readFileSync(join(migrationsDir, f), "utf8"),
    }))
    .sort((a, b) => a.version - b.version);
}

/**
 * Creates `schema` if missing and applies every migration it lacks; returns the names applied now
 * (none when another gateway got there first). `schema` must be a checked, unquoted identifier.
 */
export async function migratePostgres(pool: pg.Pool, schema: string): Promise<string[]> {
  const known = loadPostgresMigrations();
  const latest = known[known.length - 1]?.version ?? 0;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    // Advisory locks are per database, so the key names the schema: gateways on other schemas of
    // the same server do not wait for each other. Held until COMMIT or ROLLBACK.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`spage-gateway migrate ${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    );
    const applied = new Set(
      (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map(
        (r) => r.version,
      ),
    );
    const newest = Math.max(0, ...applied);
    if (newest > latest) {
      throw new Error(
        `the database schema "${schema}" was migrated by a newer gateway (migration ${newest}, this gateway knows up to ${latest}); upgrade the gateway`,
      );
    }
    const done: string[] = [];
    for (const m of known) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
        m.version,
        m.name,
        Date.now(),
      ]);
      done.push(m.name);
    }
    await client.query("COMMIT");
    return done;
  } catch (err) {
    try {
      await client.query("ROLLBACK");
    } catch (again) {
      broken = again as Error;
    }
    throw err;
  } finally {
    client.release(broken);
  }
}
