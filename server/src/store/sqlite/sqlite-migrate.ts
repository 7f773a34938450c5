/**
 * Numbered, forward-only SQL migrations for the SQLite store. Files named `NNN_name.sql` in
 * migrations/sqlite/ run once each, in order, each in its own transaction, at start.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { inInstallDir } from "../../install-dir.js";

const migrationsDir = inInstallDir("server", "src", "store", "migrations", "sqlite");

/** A migration file. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** The migrations shipped with the gateway, in order. */
export function loadMigrations(): Migration[] {
  return readdirSync(migrationsDir)
    .filter((f) => /^\d+_[\w-]+\.sql$/.test(f))
    .map((f) => ({
      version: Number(f.split("_")[0]),
      name: f,
      sql: readFileSync(join(migrationsDir, f), "utf8"),
    }))
    .sort((a, b) => a.version - b.version);
}

/** Applies every migration not yet applied; returns the names applied now. */
export function migrate(db: Database.Database): string[] {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
  );
  const applied = new Set(
    (db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map(
      (r) => r.version,
    ),
  );
  const known = loadMigrations();
  const newest = Math.max(0, ...applied);
  const latest = known[known.length - 1]?.version ?? 0;
  if (newest > latest) {
    throw new Error(
      `the database was migrated by a newer gateway (schema ${newest}, this gateway knows up to ${latest}); upgrade the gateway`,
    );
  }
  const done: string[] = [];
  for (const m of known) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
        m.version,
        m.name,
        Date.now(),
      );
    })();
    done.push(m.name);
  }
  return done;
}
