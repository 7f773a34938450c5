/**
 * The AccessStore contract: API keys, session tokens and the hash-chained audit log, as one suite
 * every backend runs (access-sqlite.test.ts, access-postgres.test.ts). A backend is opened fresh and
 * empty for each test.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AuditFields, auditHash, ChainVerifier, genesisHash } from "../src/domain/audit-chain.js";
import type { AccessStore, ApiKeyRecord, SessionRecord } from "../src/store/access-store.js";

/**
 * Opens a fresh, empty access store. `reopen` closes the store open now and opens the same storage
 * again (as a restarted gateway would); `close` closes the store open last and removes what it
 * left behind.
 */
export type OpenAccessStore = () => Promise<{
  store: AccessStore;
  reopen(): Promise<AccessStore>;
  close(): Promise<void>;
}>;

const t0 = Date.parse("2030-01-01T00:00:00.000Z");
const at = (offsetMs: number) => new Date(t0 + offsetMs);

/** A key record; ids are 16 hex digits, as real keys have. */
export function keyRecord(id: string, over: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id,
    name: `key-${id}`,
    scopes: ["tasks:read", "tasks:write"],
    salt: `salt-${id}`,
    hash: `hash-${id}`,
    createdAt: at(0),
    createdBy: "contract",
    ...over,
  };
}

/** A session record of `keyId`, expiring an hour after t0 unless told otherwise. */
export function sessionRecord(id: string, keyId: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    keyId,
    clientId: `client-${id}`,
    scopes: ["tasks:read"],
    salt: `salt-${id}`,
    hash: `hash-${id}`,
    createdAt: at(0),
    expiresAt: at(3600_000),
    ...over,
  };
}

/** Audit fields with every field set, so the hash covers something in each. */
export function auditFields(n: number, over: Partial<AuditFields> = {}): AuditFields {
  return {
    time: at(n),
    principal: "key:aaaaaaaaaaaaaaaa",
    keyId: "aaaaaaaaaaaaaaaa",
    clientAddress: "127.0.0.1",
    method: "spage.api.SpageAPI/SubmitTask",
    taskId: `task-${n}`,
    code: "ok",
    requestId: `req-${n}`,
    detail: `detail ${n}`,
    ...over,
  };
}

/** Registers the contract tests for one backend. */
export function accessStoreContract(name: string, open: OpenAccessStore): void {
  describe(`AccessStore contract: ${name}`, () => {
    const withStore = (fn: (store: AccessStore) => Promise<void>) => async () => {
      const { store, close } = await open();
      try {
        await fn(store);
      } finally {
        await close();
      }
    };

    it(
      "creates, reads, lists (oldest first, revoked only when asked) and counts API keys",
      withStore(async (store) => {
        assert.equal(await store.countApiKeys(), 0);
        assert.deepEqual(await store.listApiKeys(true), []);
        assert.equal(await store.getApiKey("0000000000000001"), undefined);

        // Created out of order: the list follows createdAt, not insertion.
        await store.createApiKey(keyRecord("000000000000000b", { createdAt: at(2000) }));
        await store.createApiKey(
          keyRecord("000000000000000a", { createdAt: at(1000), scopes: ["admin"], createdBy: "bootstrap" }),
        );
        await store.createApiKey(keyRecord("000000000000000c", { createdAt: at(3000) }));

        const a = await store.getApiKey("000000000000000a");
        assert.deepEqual(
          a,
          keyRecord("000000000000000a", { createdAt: at(1000), scopes: ["admin"], createdBy: "bootstrap" }),
        );
        assert.equal(a?.revokedAt, undefined);
        assert.deepEqual(
          (await store.listApiKeys(false)).map((k) => k.id),
          ["000000000000000a", "000000000000000b", "000000000000000c"],
        );

        const revoked = await store.revokeApiKey("000000000000000b", at(5000));
        assert.equal(revoked?.id, "000000000000000b");
        assert.deepEqual(revoked?.revokedAt, at(5000));
        assert.deepEqual(
          (await store.listApiKeys(false)).map((k) => k.id),
          ["000000000000000a", "000000000000000c"],
          "revoked keys are hidden by default",
        );
        const all = await store.listApiKeys(true);
        assert.deepEqual(
          all.map((k) => k.id),
          ["000000000000000a", "000000000000000b", "000000000000000c"],
        );
        assert.deepEqual(all[1]?.revokedAt, at(5000));
        assert.deepEqual((await store.getApiKey("000000000000000b"))?.revokedAt, at(5000));
        assert.equal(await store.countApiKeys(), 3, "revoked keys still count");
      }),
    );

    it(
      "rejects a second key with a taken id and keeps the first",
      withStore(async (store) => {
        await store.createApiKey(keyRecord("00000000000000d1", { name: "first" }));
        await assert.rejects(store.createApiKey(keyRecord("00000000000000d1", { name: "second" })));
        assert.equal((await store.getApiKey("00000000000000d1"))?.name, "first");
        assert.equal(await store.countApiKeys(), 1);
      }),
    );

    it(
      "revokes a key with all its sessions, and returns undefined for an unknown key",
      withStore(async (store) => {
        await store.createApiKey(keyRecord("00000000000000e1"));
        await store.createApiKey(keyRecord("00000000000000e2"));
        await store.createSession(sessionRecord("s-e1-a", "00000000000000e1"));
        await store.createSession(sessionRecord("s-e1-b", "00000000000000e1"));
        await store.createSession(sessionRecord("s-e2", "00000000000000e2"));

        assert.equal(await store.revokeApiKey("ffffffffffffffff", at(10)), undefined);

        const key = await store.revokeApiKey("00000000000000e1", at(10));
        assert.deepEqual(key?.revokedAt, at(10));
        for (const id of ["s-e1-a", "s-e1-b"]) {
          const s = await store.getSession(id);
          assert.deepEqual(s?.keyRevokedAt, at(10), `${id} shows its key's revocation`);
          assert.deepEqual(s?.revokedAt, at(10), `${id} is revoked with its key`);
          assert.equal(await store.revokeSession(id, at(20)), false, `${id} was no longer valid`);
        }
        const other = await store.getSession("s-e2");
        assert.equal(other?.revokedAt, undefined, "sessions of other keys are untouched");
        assert.equal(other?.keyRevokedAt, undefined);
      }),
    );

    it(
      "stores sessions and reads them back with their key's revocation folded in",
      withStore(async (store) => {
        await store.createApiKey(keyRecord("00000000000000f1"));
        const s = sessionRecord("s-f1", "00000000000000f1", {
          scopes: ["tasks:read", "agent"],
          clientId: "dashboard",
        });
        await store.createSession(s);
        assert.deepEqual(await store.getSession("s-f1"), s);
        assert.equal(await store.getSession("s-missing"), undefined);
      }),
    );

    it(
      "revokes a valid session once, and never an expired or unknown one",
      withStore(async (store) => {
        await store.createApiKey(keyRecord("00000000000000a1"));
        await store.createSession(sessionRecord("s-live", "00000000000000a1"));
        await store.createSession(sessionRecord("s-old", "00000000000000a1", { expiresAt: at(1000) }));

        assert.equal(await store.revokeSession("s-live", at(500)), true);
        assert.deepEqual((await store.getSession("s-live"))?.revokedAt, at(500));
        assert.equal(await store.revokeSession("s-live", at(600)), false, "already revoked");
        assert.deepEqual((await store.getSession("s-live"))?.revokedAt, at(500), "the first time stays");

        assert.equal(await store.revokeSession("s-old", at(2000)), false, "expired");
        assert.equal((await store.getSession("s-old"))?.revokedAt, undefined);
        assert.equal(await store.revokeSession("s-missing", at(0)), false);
      }),
    );

    it(
      "keeps a person's sessions without a key, and revokes all of one person's valid ones at once",
      withStore(async (store) => {
        const alice = { issuer: "https://id.example", subject: "alice", email: "alice@example.com" };
        const elsewhere = { issuer: "https://other.example", subject: "alice", email: "" };
        const bob = { issuer: "https://id.example", subject: "bob", email: "bob@example.com" };
        const p1 = sessionRecord("s-p1", "", { person: alice });
        await store.createSession(p1);
        await store.createSession(sessionRecord("s-p2", "", { person: alice }));
        await store.createSession(sessionRecord("s-p3", "", { person: alice, expiresAt: at(1000) }));
        await store.createSession(sessionRecord("s-p4", "", { person: elsewhere }));
        await store.createSession(sessionRecord("s-p5", "", { person: bob }));
        assert.deepEqual(await store.getSession("s-p1"), p1);
        assert.deepEqual(await store.revocation("session", "s-p1"), {});

        assert.equal(
          await store.revokePersonSessions(alice.issuer, "alice", at(2000)),
          2,
          "not the expired one",
        );
        assert.deepEqual(await store.revocation("session", "s-p1"), { revokedAt: at(2000) });
        assert.equal((await store.getSession("s-p3"))?.revokedAt, undefined);
        assert.equal((await store.getSession("s-p4"))?.revokedAt, undefined, "another issuer's alice");
        assert.equal((await store.getSession("s-p5"))?.revokedAt, undefined, "another person");
        assert.equal(await store.revokePersonSessions(alice.issuer, "alice", at(3000)), 0, "already revoked");
        assert.equal(await store.revokePersonSessions("", "alice", at(3000)), 1, "any issuer");
        assert.equal(await store.revokePersonSessions("", "", at(3000)), 0, "key sessions have no subject");
      }),
    );

    it(
      "deletes the sessions that expired before a time, and only those",
      withStore(async (store) => {
        await store.createApiKey(keyRecord("00000000000000b1"));
        await store.createSession(sessionRecord("s-1", "00000000000000b1", { expiresAt: at(1000) }));
        await store.createSession(sessionRecord("s-2", "00000000000000b1", { expiresAt: at(2000) }));
        await store.createSession(sessionRecord("s-3", "00000000000000b1", { expiresAt: at(3000) }));

        assert.equal(await store.deleteExpiredSessions(at(2500)), 2);
        assert.equal(await store.getSession("s-1"), undefined);
        assert.equal(await store.getSession("s-2"), undefined);
        assert.ok(await store.getSession("s-3"));
        assert.equal(await store.deleteExpiredSessions(at(2500)), 0);
      }),
    );

    it(
      "chains audit records: sequence from 1, genesis prev hash, each linked to the one before",
      withStore(async (store) => {
        const first = await store.appendAudit([auditFields(1), auditFields(2)]);
        const second = await store.appendAudit([auditFields(3, { code: "permission_denied", taskId: "" })]);
        const stored = [...first, ...second];
        assert.deepEqual(
          stored.map((r) => r.sequence),
          [1n, 2n, 3n],
        );
        assert.equal(stored[0]?.prevHash, genesisHash);
        assert.equal(genesisHash, "0".repeat(64));
        let prev = genesisHash;
        for (const r of stored) {
          assert.equal(r.prevHash, prev);
          assert.match(r.hash, /^[0-9a-f]{64}$/);
          assert.equal(r.hash, auditHash(r.prevHash, r.sequence, r));
          prev = r.hash;
        }
        assert.deepEqual(
          stored.map(({ sequence, prevHash, hash, ...fields }) => fields),
          [auditFields(1), auditFields(2), auditFields(3, { code: "permission_denied", taskId: "" })],
          "records are returned as given",
        );
        const listed = await store.listAudit({ afterSequence: 0n, limit: 10 });
        assert.deepEqual(listed, stored, "and read back exactly as returned");
        const v = new ChainVerifier();
        assert.ok(
          listed.every((r) => v.add(r)),
          v.broken?.reason,
        );
      }),
    );

    it(
      "keeps the chain gap-free and valid under 50 concurrent appends",
      withStore(async (store) => {
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            store.appendAudit(
              i % 5 === 0 ? [auditFields(i * 2), auditFields(i * 2 + 1)] : [auditFields(i * 2)],
            ),
          ),
        );
        const returned = results.flat();
        assert.equal(returned.length, 60);
        assert.deepEqual(
          returned.map((r) => r.sequence).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
          Array.from({ length: 60 }, (_, i) => BigInt(i + 1)),
        );
        for (const batch of results) {
          for (let i = 1; i < batch.length; i++) {
            assert.equal(batch[i]?.sequence, (batch[i - 1]?.sequence ?? 0n) + 1n, "a batch stays together");
          }
        }
        const listed = await store.listAudit({ afterSequence: 0n, limit: 1000 });
        assert.equal(listed.length, 60);
        const v = new ChainVerifier();
        for (const r of listed) assert.ok(v.add(r), `record ${r.sequence}: ${v.broken?.reason}`);
        assert.equal(v.checked, 60);
      }),
    );

    it(
      "lists audit records after a sequence, by principal and by task, up to a limit",
      withStore(async (store) => {
        await store.appendAudit([
          auditFields(1, { principal: "key:a", taskId: "t1" }),
          auditFields(2, { principal: "key:b", taskId: "t1" }),
          auditFields(3, { principal: "key:a", taskId: "t2" }),
          auditFields(4, { principal: "unknown", taskId: "" }),
          auditFields(5, { principal: "key:a", taskId: "t1" }),
        ]);
        const seq = (q: Parameters<AccessStore["listAudit"]>[0]) =>
          store.listAudit(q).then((rs) => rs.map((r) => r.sequence));

        assert.deepEqual(await seq({ afterSequence: 0n, limit: 100 }), [1n, 2n, 3n, 4n, 5n]);
        assert.deepEqual(await seq({ afterSequence: 2n, limit: 100 }), [3n, 4n, 5n]);
        assert.deepEqual(await seq({ afterSequence: 0n, limit: 2 }), [1n, 2n]);
        assert.deepEqual(await seq({ afterSequence: 2n, limit: 2 }), [3n, 4n]);
        assert.deepEqual(await seq({ afterSequence: 5n, limit: 100 }), []);
        assert.deepEqual(await seq({ afterSequence: 0n, limit: 100, principal: "key:a" }), [1n, 3n, 5n]);
        assert.deepEqual(await seq({ afterSequence: 0n, limit: 100, taskId: "t1" }), [1n, 2n, 5n]);
        assert.deepEqual(await seq({ afterSequence: 1n, limit: 100, principal: "key:a", taskId: "t1" }), [
          5n,
        ]);
        assert.deepEqual(await seq({ afterSequence: 0n, limit: 1, principal: "key:a", taskId: "t2" }), [3n]);
        assert.deepEqual(await seq({ afterSequence: 0n, limit: 100, principal: "nobody" }), []);
      }),
    );

    it("keeps keys, sessions, revocations and the audit chain across close and reopen", async () => {
      const { store: first, reopen, close } = await open();
      try {
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

        const second = await reopen();
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
        await close();
      }
    });
  });
}
