/**
 * Where the `keys`, `sessions` and `audit` commands act: directly on the store, under --data-dir or at
 * --database-url (for bootstrapping and recovery, with the gateway running or not), or through a running gateway at
 * --endpoint with an admin --token. Both give the same wire messages back.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  type ApiKey,
  ApiKeySchema,
  type AuditEvent,
  AuditEventSchema,
} from "../../../gen/spage/api/access_pb.js";
import { auditToWire, keyToWire } from "../services/access-wire.js";
import { createApiKey, revokeApiKey } from "../services/api-keys.js";
import { createAuditLog } from "../services/audit-log.js";
import type { GatewayStore } from "../store/gateway-store.js";
import { isPostgresUrl, openPostgresStore } from "../store/postgres/postgres-store.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { type CommonFlags, UsageError } from "./cli-args.js";
import { openClient } from "./gateway-client.js";

/** One page of the audit log. */
export interface AuditPage {
  readonly events: AuditEvent[];
  /** 0 when there is no next page. */
  readonly next: bigint;
}

/** Key and audit operations, wherever they run. */
export interface AccessBackend {
  createKey(name: string, scopes: string[]): Promise<{ key: ApiKey; apiKey: string }>;
  listKeys(includeRevoked: boolean): Promise<ApiKey[]>;
  revokeKey(id: string): Promise<ApiKey>;
  /** Ends a person's valid sessions (of every issuer when `issuer` is ""); returns how many. */
  revokePersonSessions(issuer: string, subject: string): Promise<number>;
  auditPage(after: bigint, limit: number, principal: string, taskId: string): Promise<AuditPage>;
  close(): Promise<void>;
}

/** Where the store is, as the `keys` and `audit` flags give it. */
export interface StoreFlags {
  readonly dataDir?: string;
  readonly databaseUrl?: string;
  readonly databaseSchema?: string;
}

/** The store flags of the `keys` and `audit` commands, for parseCommand. */
export const storeFlagOptions = {
  "data-dir": { type: "string" },
  "database-url": { type: "string" },
  "database-schema": { type: "string" },
} as const;

/** The store flags from parsed values (SPAGE_DATABASE_URL / SPAGE_DATABASE_SCHEMA as defaults). */
export function storeFlagsOf(v: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): StoreFlags {
  const url = (v["database-url"] as string | undefined) ?? env.SPAGE_DATABASE_URL;
  return {
    ...(v["data-dir"] !== undefined ? { dataDir: v["data-dir"] as string } : {}),
    ...(url ? { databaseUrl: url } : {}),
    databaseSchema: (v["database-schema"] as string | undefined) ?? env.SPAGE_DATABASE_SCHEMA ?? "public",
  };
}

/**
 * Opens the backend the flags ask for: the store (--database-url, or --data-dir) or a gateway
 * (--endpoint with --token or a client certificate).
 */
export async function openAccessBackend(
  at: StoreFlags,
  common: CommonFlags,
  action: string,
): Promise<AccessBackend> {
  if (at.databaseUrl !== undefined || at.dataDir !== undefined) return storeBackend(at, action);
  // A client certificate the gateway maps to "admin" is credentials too.
  if (common.token === "" && !common.tls?.cert) {
    throw new UsageError(
      "give --data-dir DIR or --database-url URL to work on the store directly, or --token with an admin key or token (SPAGE_TOKEN), or an admin client certificate (--tls-client-cert, --tls-client-key), to go through the gateway at --endpoint",
    );
  }
  return gatewayBackend(common);
}

async function openFlaggedStore(at: StoreFlags): Promise<GatewayStore> {
  if (at.databaseUrl !== undefined) {
    if (!isPostgresUrl(at.databaseUrl)) {
      throw new UsageError("--database-url must be postgres://user@host:port/database");
    }
    return openPostgresStore({ url: at.databaseUrl, schema: at.databaseSchema ?? "public", poolSize: 2 });
  }
  const path = join(at.dataDir ?? "", "spage.db");
  // A mistyped directory would otherwise get a new, empty database no gateway reads.
  if (!existsSync(path)) {
    throw new UsageError(
      `no gateway database at ${path}: give the --data-dir the gateway runs with (it creates spage.db at its first start)`,
    );
  }
  return openSqliteStore({ path });
}

async function storeBackend(at: StoreFlags, action: string): Promise<AccessBackend> {
  const store = await openFlaggedStore(at);
  const audit = createAuditLog(store);
  const record = (detail: string, keyId = "") =>
    audit.record({
      principal: "cli",
      keyId,
      clientAddress: "",
      method: `cli/${action}`,
      taskId: "",
      code: "ok",
      requestId: "",
      detail,
    });
  return {
    async createKey(name, scopes) {
      const { record: k, apiKey } = await createApiKey(store, name, scopes, "cli");
      await record(`created key ${k.id} "${k.name}" with ${k.scopes.join(",")}`, k.id);
      return { key: create(ApiKeySchema, keyToWire(k)), apiKey };
    },
    async listKeys(includeRevoked) {
      return (await store.listApiKeys(includeRevoked)).map((k) => create(ApiKeySchema, keyToWire(k)));
    },
    async revokeKey(id) {
      const k = await revokeApiKey(store, id);
      await record(`revoked key ${k.id} "${k.name}"`, k.id);
      return create(ApiKeySchema, keyToWire(k));
    },
    async revokePersonSessions(issuer, subject) {
      const n = await store.revokePersonSessions(issuer, subject, new Date());
      await record(`revoked ${n} sessions of ${issuer === "" ? "any issuer" : issuer}#${subject}`);
      return n;
    },
    async auditPage(after, limit, principal, taskId) {
      const rows = await store.listAudit({
        afterSequence: after,
        limit,
        ...(principal ? { principal } : {}),
        ...(taskId ? { taskId } : {}),
      });
      const last = rows[rows.length - 1];
      return {
        events: rows.map((r) => create(AuditEventSchema, auditToWire(r))),
        next: rows.length === limit && last ? last.sequence : 0n,
      };
    },
    close: () => store.close(),
  };
}

function gatewayBackend(common: CommonFlags): AccessBackend {
  const client = openClient(common);
  const { api } = client;
  return {
    async createKey(name, scopes) {
      const res = await api.createApiKey({ name, scopes });
      return { key: res.key ?? create(ApiKeySchema), apiKey: res.apiKey };
    },
    async listKeys(includeRevoked) {
      return (await api.listApiKeys({ includeRevoked })).keys;
    },
    async revokeKey(id) {
      return (await api.revokeApiKey({ id })).key ?? create(ApiKeySchema);
    },
    async revokePersonSessions(issuer, subject) {
      return (await api.revokePersonSessions({ issuer, subject })).revoked;
    },
    async auditPage(after, limit, principal, taskId) {
      const res = await api.listAuditEvents({ afterSequence: after, limit, principal, taskId });
      return { events: res.events, next: res.nextAfterSequence };
    },
    async close() {
      client.close();
    },
  };
}
