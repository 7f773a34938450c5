/**
 * The PostgreSQL the store tests run against (the local server, database `test`; override with
 * SPAGE_TEST_DATABASE_URL), and throwaway schemas in it: each test works in a schema of its own with
 * a random name, dropped afterwards.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";

/** The database the tests use. */
export const testDatabaseUrl =
  process.env.SPAGE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A schema name no other test uses. */
export function freshSchemaName(): string {
  return `spage_test_${randomBytes(6).toString("hex")}`;
}

/** Runs statements on a connection of its own (outside any store), then closes it. */
export async function withTestDatabase<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testDatabaseUrl });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${testDatabaseUrl} (${(err as Error).message}); start it with ` +
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops a test schema and everything in it. */
export function dropSchema(schema: string): Promise<void> {
  return withTestDatabase(async (c) => {
    await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  });
}
