/**
 * The connection pool of the PostgreSQL store and the two ways the store talks through it: one
 * statement on any connection (its own transaction), or a function run in one transaction on one
 * connection. Every statement is a named (prepared) one, parsed once per connection.
 */
import pg from "pg";
import { UnavailableError } from "../../domain/errors.js";
import { tracedWrite } from "../../tracing/store-spans.js";
import { pgTypes } from "./postgres-rows.js";

/** How the pool connects. */
export interface PostgresPoolOptions {
  /** A `postgres://` connection URL. */
  readonly url: string;
  /** The schema every connection works in (an unquoted SQL identifier, already checked). */
  readonly schema: string;
  /** Most connections open at once. */
  readonly poolSize: number;
  /** Called with errors of idle connections (the server restarted, the network dropped). */
  readonly onIdleError: (err: Error) => void;
}

/**
 * A transaction left idle this long (its gateway stalled or lost its network) is ended by the
 * server. The store's transactions never wait on anything but the database between statements, so
 * this only bounds how long a stalled gateway can hold the event counter's lock, which every event
 * writer of every gateway waits for.
 */
const idleInTransactionMs = 5000;

/** A new connection that takes longer than this fails, so calls fail fast while the server is gone. */
const connectTimeoutMs = 5000;

/** Opens the pool; connections are made on demand. */
export function createPostgresPool(opts: PostgresPoolOptions): pg.Pool {
  // Server settings travel in the startup packet (`options`), so every connection has them before
  // its first statement. A connection URL's own `options` parameter would replace the config's, so
  // it is taken out of the URL and kept in front of ours.
  const url = new URL(opts.url);
  const given = url.searchParams.get("options");
  url.searchParams.delete("options");
  const options = [
    given,
    `-c search_path=${opts.schema}`,
    `-c idle_in_transaction_session_timeout=${idleInTransactionMs}`,
  ]
    .filter(Boolean)
    .join(" ");
  const pool = new pg.Pool({
    connectionString: url.toString(),
    options,
    max: opts.poolSize,
    types: pgTypes,
    keepAlive: true,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: "spage-gateway",
  });
  // Without a listener, an idle connection's error would end the process.
  pool.on("error", (err) => opts.onIdleError(err));
  return pool;
}

/** Names of the statements by their text: one name per text, the same on every connection. */
const statementNames = new Map<string, string>();

function nameOf(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `spage_${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return name;
}

/** A named statement whose rows come back as objects keyed by column name. */
export function named(text: string, values: unknown[] = []): pg.QueryConfig {
  return { name: nameOf(text), text, values };
}

/** A named statement whose rows come back as arrays, in select-list order. */
export function namedArray(text: string, values: unknown[] = []): pg.QueryArrayConfig {
  return { name: nameOf(text), text, values, rowMode: "array" };
}

/** What runs statements: the pool (any connection) or one connection inside a transaction. */
export interface Queryable {
  query<R extends unknown[] = unknown[]>(config: pg.QueryArrayConfig): Promise<pg.QueryArrayResult<R>>;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>>;
}

/** The pool as the store uses it: refuses calls once closed, and lets `close` wait for calls in flight. */
export interface PostgresDb {
  /** One statement on any connection, as its own transaction. */
  readonly pool: Queryable;
  /**
   * Runs `fn` inside BEGIN … COMMIT on one connection; resolves once committed. With `op` (the
   * store method) the transaction is a span while tracing; a caller that makes the span itself
   * (a batch of several calls' writes) leaves it out.
   */
  transaction<T>(fn: (client: pg.PoolClient) => Promise<T>, op?: string): Promise<T>;
  /** Runs a call, refusing it once the store is closed and tracking it until it settles. */
  guard<T>(run: () => Promise<T>): Promise<T>;
  /** Refuses new calls, waits for those in flight, and closes every connection. */
  close(): Promise<void>;
}

/** Wraps an open pool. */
export function createPostgresDb(pool: pg.Pool, log: (err: Error) => void): PostgresDb {
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();

  const guard = <T>(run: () => Promise<T>): Promise<T> => {
    if (closed) return Promise.reject(new Error("store is closed"));
    const p = run().catch((err: unknown) => {
      throw unreachable(err) ?? err;
    });
    inFlight.add(p);
    const forget = () => inFlight.delete(p);
    p.then(forget, forget);
    return p;
  };

  const transaction = async <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    // A connection can fail between statements, while no query is running to take the error; it
    // must not end the process. The failure then surfaces from the next statement.
    client.on("error", log);
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const value = await fn(client);
      await client.query("COMMIT");
      return value;
    } catch (err) {
      try {
        await client.query("ROLLBACK");
      } catch (again) {
        // The connection is unusable: the pool discards it instead of handing it out again.
        broken = again as Error;
      }
      throw err;
    } finally {
      client.off("error", log);
      client.release(broken);
    }
  };

  const anyConnection = {
    query: (config: pg.QueryConfig) => guard(() => pool.query(config)),
  } as Queryable;

  return {
    pool: anyConnection,
    transaction: (fn, op) =>
      guard(() =>
        op === undefined ? transaction(fn) : tracedWrite("postgresql", op, () => transaction(fn)),
      ),
    guard,
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...inFlight]);
      await pool.end();
    },
  };
}

/** SQLSTATE classes and codes that mean the server is gone or not taking work, not a bad call. */
const unreachableStates = /^(08|57P0[1-3]|53300)/;

/**
 * The error a call gets while the database cannot be reached (down, restarting, network cut, no
 * connection free in time): UNAVAILABLE with the cause, so clients retry and operators see why;
 * undefined for any other error.
 */
export function unreachable(err: unknown): UnavailableError | undefined {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : String(err);
  const network =
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|ENOTFOUND|EAI_AGAIN)$/.test(code);
  const driver =
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed/i.test(
      message,
    );
  if (!network && !driver && !unreachableStates.test(code)) return undefined;
  return new UnavailableError(
    `the database is unreachable (${code ? `${code}: ` : ""}${message}); retry shortly (a write cut off while committing may have been stored: retrying it with the same task_id is safe)`,
  );
}
