/**
 * The shared GatewayStore: PostgreSQL through the `pg` driver, for several gateways on one database.
 * Opening connects, creates the schema if needed and migrates it (postgres-migrate.ts). Every store
 * call is one transaction on a pooled connection, committed before the call resolves, except task
 * creations, which are group-committed (postgres-create-batch.ts); concurrent calls run in parallel
 * on the pool, so two calls in flight at once may commit in either order. Event sequences are taken under a lock at commit, which serializes
 * event-writing transactions (postgres-events.ts); the audit chain's head is locked by each append
 * (postgres-audit.ts).
 */
import type { GatewayStore } from "../gateway-store.js";
import { createPostgresAccess } from "./postgres-access.js";
import { createPostgresDependencies } from "./postgres-dependencies.js";
import { createPostgresLiveness } from "./postgres-liveness.js";
import { migratePostgres } from "./postgres-migrate.js";
import { listenForCommits } from "./postgres-notify.js";
import { createPostgresDb, createPostgresPool } from "./postgres-pool.js";
import { createPostgresTasks } from "./postgres-tasks.js";

/** Where the store's few log lines go; a pino logger fits. */
export interface PostgresStoreLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Options of the PostgreSQL store. */
export interface PostgresStoreOptions {
  /** Connection URL, e.g. `postgres://user:password@host:5432/database`. */
  readonly url: string;
  /**
   * Schema holding every table (created if missing), so several gateways, each with its own
   * schema, can share one server. Lower-case letters, digits and `_`, not starting with a digit.
   * Default `public`.
   */
  readonly schema?: string;
  /** Most connections open at once. Default 10. */
  readonly poolSize?: number;
  /** Receives the migrations applied at open and errors of idle connections. */
  readonly log?: PostgresStoreLog;
}

/** Whether `name` can be a schema of the store: a plain lower-case SQL identifier. */
export function isSchemaName(name: string): boolean {
  return /^[a-z_][a-z0-9_]{0,62}$/.test(name);
}

/** Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`). */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/**
 * Opens the PostgreSQL store: connects, creates and migrates the schema (once, however many gateways
 * open it at the same moment), and refuses a schema migrated by a newer gateway.
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<GatewayStore> {
  const schema = opts.schema ?? "public";
  if (!isSchemaName(schema)) {
    throw new Error(
      `invalid PostgreSQL schema name ${JSON.stringify(schema)}: use lower-case letters, digits and _, not starting with a digit, at most 63 characters`,
    );
  }
  const poolSize = opts.poolSize ?? 10;
  if (!Number.isInteger(poolSize) || poolSize < 1) {
    throw new Error(`invalid PostgreSQL pool size ${poolSize}: use a whole number of at least 1`);
  }
  const connectionLost = (err: Error) =>
    opts.log?.warn({ err, schema }, "a PostgreSQL connection failed; the pool opens a new one when needed");
  const pool = createPostgresPool({ url: opts.url, schema, poolSize, onIdleError: connectionLost });
  try {
    const applied = await migratePostgres(pool, schema);
    if (applied.length > 0) opts.log?.info({ schema, applied }, "applied PostgreSQL migrations");
  } catch (err) {
    await pool.end();
    throw err;
  }
  const db = createPostgresDb(pool, connectionLost);

  return {
    ...createPostgresAccess(db),
    ...createPostgresTasks(db),
    ...createPostgresDependencies(db),
    ...createPostgresLiveness(db),
    kind: "postgres",
    shared: true,

    watchCommits(listener) {
      return listenForCommits(opts.url, schema, listener, (err) =>
        opts.log?.warn({ err, schema }, "listening for other gateways' events failed; listening again"),
      );
    },

    async ping() {
      await db.pool.query({ text: "SELECT 1" });
    },

    close: () => db.close(),
  };
}
