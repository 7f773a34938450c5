/**
 * The authenticator on a real SQLite store: a credential checked before costs one revocation read
 * per event-loop turn, calls answer from that read without waiting, and a revocation is seen by
 * every call of the next turn. A read that fails fails the calls it answers and is tried again.
 * SQLite answers its reads at once; the same store behind promises stands for a database that must
 * be waited for, where the calls of a turn that come before the read settles all wait on it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { type Authenticator, createAuthenticator } from "../src/auth/authenticator.js";
import { newApiKey } from "../src/auth/credentials.js";
import type { Principal } from "../src/auth/principal.js";
import type { AccessStore } from "../src/store/access-store.js";
import type { GatewayStore } from "../src/store/gateway-store.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The real store, counting revocation reads, answering them through a promise when `waits` is set,
 * and failing the next one when told to.
 */
function counting(store: GatewayStore) {
  const seen = { reads: 0, failNext: false, waits: false };
  const wrapped: AccessStore = Object.create(store);
  wrapped.revocation = (kind, id) => {
    seen.reads++;
    if (seen.failNext) {
      seen.failNext = false;
      const err = new Error("disk I/O error");
      if (seen.waits) return Promise.reject(err);
      throw err;
    }
    const r = store.revocation(kind, id);
    return seen.waits ? Promise.resolve(r) : r;
  };
  return { wrapped, seen };
}

describe("authenticator", () => {
  let dir: string;
  let store: GatewayStore;
  let authn: Authenticator;
  let seen: { reads: number; failNext: boolean; waits: boolean };
  let token: string;
  let keyToken: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "spage-authn-"));
    store = openSqliteStore({ path: join(dir, "spage.db") });
    const key = newApiKey();
    await store.createApiKey({
      id: key.id,
      name: "reader",
      scopes: ["tasks:read"],
      salt: key.salt,
      hash: key.hash,
      createdAt: new Date(),
      createdBy: "test",
    });
    keyToken = key.token;
    const c = counting(store);
    seen = c.seen;
    authn = createAuthenticator(c.wrapped, { tokenTtlMs: 60_000 });
    token = (await authn.issueSession(key.token, "test")).token;
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads a known token's revocation once per turn and answers every call at once", async () => {
    await authn.resolve(token); // now verified
    await nextTurn();
    seen.reads = 0;
    const calls: (Principal | Promise<Principal>)[] = [];
    for (let i = 0; i < 10; i++) calls.push(authn.resolve(token));
    assert.equal(seen.reads, 1);
    for (const q of calls) {
      assert.ok(!(q instanceof Promise), "the store reads in process: no call needs a promise");
      assert.equal(q, calls[0]);
    }
    await nextTurn();
    authn.resolve(token);
    assert.equal(seen.reads, 2, "the next turn reads again");
  });

  it("with a store that must be waited for, calls before the read settles wait on it, later ones do not", async () => {
    await authn.resolve(token);
    seen.waits = true;
    await nextTurn();
    seen.reads = 0;
    const first = [authn.resolve(token), authn.resolve(token)];
    for (const q of first) assert.ok(q instanceof Promise, "the read has not settled yet");
    const p = await first[0];
    assert.equal(await first[1], p);
    const later: (Principal | Promise<Principal>)[] = [];
    for (let i = 0; i < 10; i++) later.push(authn.resolve(token));
    assert.equal(seen.reads, 1);
    for (const q of later) {
      assert.ok(!(q instanceof Promise), "a call after the read settled needs no promise");
      assert.equal(q, p);
    }
    await nextTurn();
    await authn.resolve(token);
    assert.equal(seen.reads, 2, "the next turn reads again");
  });

  it("refuses a revoked session token and a revoked key from the next turn on", async () => {
    await authn.resolve(token);
    await authn.resolve(keyToken);
    const session = (await authn.resolve(token)) as Principal;
    await store.revokeSession(session.sessionId, new Date());
    await nextTurn();
    await assert.rejects(async () => authn.resolve(token), /session token was revoked/);
    // Answered without a promise from the turn's read: still refused.
    assert.throws(() => authn.resolve(token), /session token was revoked/);
    await store.revokeApiKey(session.keyId, new Date());
    await nextTurn();
    await assert.rejects(async () => authn.resolve(keyToken), /API key [0-9a-f]+ was revoked/);
  });

  it("fails a call whose read failed, and reads again for the next", async () => {
    await authn.resolve(token);
    await nextTurn();
    seen.failNext = true;
    assert.throws(() => authn.resolve(token), /disk I\/O error/);
    const p = authn.resolve(token);
    assert.ok(!(p instanceof Promise));
    assert.equal(p.name.startsWith("key:"), true);
  });

  it("with a store that must be waited for, fails the calls of a turn whose read failed, and reads again in the next", async () => {
    await authn.resolve(token);
    seen.waits = true;
    await nextTurn();
    seen.failNext = true;
    const a = authn.resolve(token);
    const b = authn.resolve(token);
    await assert.rejects(async () => a, /disk I\/O error/);
    await assert.rejects(async () => b, /disk I\/O error/);
    await nextTurn();
    const p = await authn.resolve(token);
    assert.equal(p.name.startsWith("key:"), true);
  });
});
