/**
 * Runs the AccessStore contract on the PostgreSQL backend, each test in a fresh schema of the local
 * server, plus what sharing one database across gateways must give: a revocation through one store
 * is what another reads next, and writers on two stores extend one audit chain.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { ChainVerifier } from "../src/domain/audit-chain.js";
import type { GatewayStore } from "../src/store/gateway-store.js";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { accessStoreContract, auditFields, keyRecord, sessionRecord } from "./access-contract.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";

accessStoreContract("postgres", async () => {
  const schema = freshSchemaName();
  let store = await openPostgresStore({ url: testDatabaseUrl, schema });
  return {
    store,
    async reopen() {
      await store.close();
      store = await openPostgresStore({ url: testDatabaseUrl, schema });
      return store;
    },
    async close() {
      await store.close();
      await dropSchema(schema);
    },
  };
});

/** Opens two stores on one fresh schema, runs `fn`, then closes them and drops the schema. */
async function withTwoStores(fn: (a: GatewayStore, b: GatewayStore) => Promise<void>): Promise<void> {
  const schema = freshSchemaName();
  const a = await openPostgresStore({ url: testDatabaseUrl, schema });
  const b = await openPostgresStore({ url: testDatabaseUrl, schema });
  try {
    await fn(a, b);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await dropSchema(schema);
  }
}

describe("PostgreSQL access store", () => {
  it("answers revocation checks from what another store committed", async () => {
    await withTwoStores(async (a, b) => {
      await a.createApiKey(keyRecord("3333333333333333"));
      await a.createSession(sessionRecord("s-3", "3333333333333333"));
      assert.deepEqual(await b.revocation("api_key", "3333333333333333"), {});
      assert.deepEqual(await b.revocation("session", "s-3"), {});
      assert.equal(await b.revocation("session", "s-missing"), undefined);
      const at = new Date(Date.parse("2030-01-01T00:00:10.000Z"));
      await a.revokeApiKey("3333333333333333", at);
      assert.deepEqual(await b.revocation("api_key", "3333333333333333"), { revokedAt: at });
      assert.deepEqual(await b.revocation("session", "s-3"), { revokedAt: at, keyRevokedAt: at });
    });
  });

  it("keeps one audit chain, gap-free and valid, with writers on two stores at once", async () => {
    await withTwoStores(async (a, b) => {
      const appends = [a, b].flatMap((store, s) =>
        Array.from({ length: 30 }, (_, i) => {
          const n = s * 1000 + i * 2;
          return store.appendAudit(i % 3 === 0 ? [auditFields(n), auditFields(n + 1)] : [auditFields(n)]);
        }),
      );
      // Audited task creation takes the chain's head and the event counter in one transaction.
      const creates = [a, b].flatMap((store, s) =>
        Array.from({ length: 10 }, (_, i) => {
          const id = `audited-${s}-${i}`;
          return store.createTask(
            {
              id,
              type: "playbook",
              priority: TaskPriority.NORMAL,
              payload: {},
              metadata: {},
              requestHash: id,
              status: TaskStatus.PENDING,
              timeoutSeconds: 0,
            },
            { type: "task.submitted", taskId: id, data: {} },
            auditFields(5000 + s * 100 + i, { taskId: id }),
          );
        }),
      );
      const [batches] = await Promise.all([Promise.all(appends), Promise.all(creates)]);
      for (const batch of batches) {
        for (let i = 1; i < batch.length; i++) {
          assert.equal(batch[i]?.sequence, (batch[i - 1]?.sequence ?? 0n) + 1n, "a batch stays together");
        }
      }
      const expected = 2 * (30 + 10 + 10);
      const listed = await b.listAudit({ afterSequence: 0n, limit: 1000 });
      assert.equal(listed.length, expected);
      const v = new ChainVerifier();
      for (const r of listed) assert.ok(v.add(r), `record ${r.sequence}: ${v.broken?.reason}`);
      assert.equal(v.checked, expected);
      const returned = new Map(batches.flat().map((r) => [r.sequence, r]));
      for (const r of listed.filter((x) => returned.has(x.sequence))) {
        assert.deepEqual(r, returned.get(r.sequence), `record ${r.sequence} is stored as returned`);
      }
    });
  });
});
