/**
 * Runs the AccessStore contract on the SQLite backend, each test on its own database file in a temp
 * dir, plus what SQLite must add: keys, sessions and the audit chain survive a close and reopen.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ChainVerifier } from "../src/domain/audit-chain.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { accessStoreContract, auditFields, keyRecord, sessionRecord } from "./access-contract.js";

function tempDb(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "spage-access-"));
  return { path: join(dir, "spage.db"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

accessStoreContract("sqlite", async () => {
  const { path, cleanup } = tempDb();
  const store = openSqliteStore({ path });
  return {
    store,
    async close() {
      await store.close();
      cleanup();
    },
  };
});

describe("SQLite access store", () => {
  it("keeps keys, sessions, revocations and the audit chain across close and reopen", async () => {
    const { path, cleanup } = tempDb();
    try {
      const first = openSqliteStore({ path });
      const live = keyRecord("1111111111111111", { scopes: ["admin"] });
      const gone = keyRecord("2222222222222222", { createdAt: new Date(live.createdAt.getTime() + 1) });
      await first.createApiKey(live);
      await first.createApiKey(gone);
      const session = sessionRecord("s-live", live.id);
      await first.createSession(session);
      await first.createSession(sessionRecord("s-gone", gone.id));
      const revokedAt = new Date(live.createdAt.getTime() + 10);
      await first.revokeApiKey(gone.id, revokedAt);
      const before = await first.appendAudit([auditFields(1), auditFields(2), auditFields(3)]);
      await first.close();

      const second = openSqliteStore({ path });
      try {
        assert.equal(await second.countApiKeys(), 2);
        assert.deepEqual(await second.getApiKey(live.id), live);
        assert.deepEqual(
          (await second.listApiKeys(false)).map((k) => k.id),
          [live.id],
        );
        assert.deepEqual((await second.getApiKey(gone.id))?.revokedAt, revokedAt);
        assert.deepEqual(await second.getSession("s-live"), session);
        assert.deepEqual((await second.getSession("s-gone"))?.keyRevokedAt, revokedAt);

        // The chain goes on from the last stored record, not from the genesis hash again.
        const [next] = await second.appendAudit([auditFields(4)]);
        assert.equal(next?.sequence, 4n);
        assert.equal(next?.prevHash, before[2]?.hash);
        const all = await second.listAudit({ afterSequence: 0n, limit: 100 });
        assert.deepEqual(all.slice(0, 3), before);
        const v = new ChainVerifier();
        for (const r of all) assert.ok(v.add(r), v.broken?.reason);
        assert.equal(v.checked, 4);
      } finally {
        await second.close();
      }
    } finally {
      cleanup();
    }
  });
});
