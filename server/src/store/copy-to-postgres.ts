/**
 * Moves a single-machine history to PostgreSQL: every task, event, daemon, core stream record, key,
 * session and audit record of a SQLite store, into an empty PostgreSQL schema, in one transaction
 * (all or nothing), with the same ids, sequences and positions, so the event log stays gap-free
 * and the audit chain stays verifiable. Both stores are migrated to the code's schema first.
 */
import Database from "better-sqlite3";
import pg from "pg";
import { ChainVerifier } from "../domain/audit-chain.js";
import { openPostgresStore } from "./postgres/postgres-store.js";
import { openSqliteStore } from "./sqlite/sqlite-store.js";

/** The tables copied, in an order that respects references. */
const tables = ["tasks", "events", "daemons", "core_streams", "api_keys", "sessions", "audit_log"] as const;

/** Rows per insert statement. */
const batch = 500;

/** What was copied, per table, and the audit chain check. */
export interface CopyReport {
  readonly rows: Readonly<Record<(typeof tables)[number], number>>;
  readonly lastSequence: number;
  readonly auditChecked: number;
}

/** Thrown for a copy that cannot start (the target holds data); nothing was written. */
export class CopyRefused extends Error {}

/** Copies the SQLite store at `sqlitePath` into the empty schema `schema` at `url`. */
export async function copySqliteToPostgres(
  sqlitePath: string,
  url: string,
  schema: string,
): Promise<CopyReport> {
  // Bring both to the code's schema, the way a gateway would at start.
  await openSqliteStore({ path: sqlitePath }).close();
  await (await openPostgresStore({ url, schema, poolSize: 1 })).close();

  const source = new Database(sqlitePath, { readonly: true, fileMustExist: true });
  const target = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await target.connect();
  try {
    const held: string[] = [];
    for (const t of tables) {
      const n = Number((await target.query(`SELECT count(*) AS n FROM ${t}`)).rows[0]?.n ?? 0);
      if (n > 0) held.push(`${n} ${t}`);
    }
    if (held.length > 0) {
      throw new CopyRefused(
        `schema "${schema}" already holds data (${held.join(", ")}); copy into an empty schema (--schema NAME picks another)`,
      );
    }
    const rows = {} as Record<(typeof tables)[number], number>;
    let auditChecked = 0;
    await target.query("BEGIN");
    try {
      for (const t of tables) rows[t] = await copyTable(source, target, schema, t);
      // The counters that number new rows continue after what was copied.
      await target.query("UPDATE event_counter SET last = (SELECT COALESCE(MAX(sequence), 0) FROM events)");
      await target.query(
        `UPDATE audit_head SET sequence = a.sequence, hash = a.hash
           FROM (SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1) a`,
      );
      await target.query(
        "SELECT setval(pg_get_serial_sequence('tasks', 'position'), GREATEST((SELECT MAX(position) FROM tasks), 1))",
      );
      // The chain is checked as copied, before anything is committed.
      auditChecked = await verifyAudit(target);
      await target.query("COMMIT");
    } catch (err) {
      await target.query("ROLLBACK").catch(() => {});
      throw err;
    }
    const lastSequence = Number((await target.query("SELECT last FROM event_counter")).rows[0]?.last ?? 0);
    return { rows, lastSequence, auditChecked };
  } finally {
    source.close();
    await target.end();
  }
}

/** Copies one table's rows (the columns both schemas have); returns how many. */
async function copyTable(
  source: Database.Database,
  target: pg.Client,
  schema: string,
  table: string,
): Promise<number> {
  const targetColumns = (
    await target.query<{ column_name: string; data_type: string }>(
      "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
      [schema, table],
    )
  ).rows;
  const sourceColumns = new Set(
    (source.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name),
  );
  const columns = targetColumns.filter((c) => sourceColumns.has(c.column_name));
  const booleans = new Set(columns.filter((c) => c.data_type === "boolean").map((c) => c.column_name));
  const names = columns.map((c) => c.column_name);
  const list = names.map((n) => pg.escapeIdentifier(n)).join(", ");
  let n = 0;
  let pending: unknown[][] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    const values: unknown[] = [];
    const tuples = pending.map((row) => {
      const start = values.length;
      values.push(...row);
      return `(${row.map((_, i) => `$${start + i + 1}`).join(", ")})`;
    });
    const overriding = table === "tasks" ? " OVERRIDING SYSTEM VALUE" : "";
    await target.query(`INSERT INTO ${table} (${list})${overriding} VALUES ${tuples.join(", ")}`, values);
    n += pending.length;
    pending = [];
  };
  const select = source.prepare(`SELECT ${names.map((c) => `"${c}"`).join(", ")} FROM ${table}`).raw(true);
  for (const row of select.iterate() as Iterable<unknown[]>) {
    pending.push(row.map((v, i) => (booleans.has(names[i] ?? "") ? v === 1 || v === true : v)));
    if (pending.length >= batch) await flush();
  }
  await flush();
  return n;
}

/** Checks the copied audit chain from its first record; returns how many were checked. */
async function verifyAudit(target: pg.Client): Promise<number> {
  const chain = new ChainVerifier();
  let after = 0;
  for (;;) {
    const page = (
      await target.query(
        `SELECT sequence, time, principal, key_id, client_address, method, task_id, code, request_id, detail,
                prev_hash, hash FROM audit_log WHERE sequence > $1 ORDER BY sequence LIMIT 1000`,
        [after],
      )
    ).rows as Record<string, string | number>[];
    for (const r of page) {
      const ok = chain.add({
        sequence: BigInt(r.sequence ?? 0),
        time: new Date(Number(r.time)),
        principal: String(r.principal),
        keyId: String(r.key_id),
        clientAddress: String(r.client_address),
        method: String(r.method),
        taskId: String(r.task_id),
        code: String(r.code),
        requestId: String(r.request_id),
        detail: String(r.detail),
        prevHash: String(r.prev_hash),
        hash: String(r.hash),
      });
      if (!ok) {
        throw new Error(
          `the audit chain breaks at record ${chain.broken?.sequence}: ${chain.broken?.reason}; nothing was copied`,
        );
      }
    }
    if (page.length < 1000) return chain.checked;
    after = Number(page[page.length - 1]?.sequence ?? after);
  }
}
