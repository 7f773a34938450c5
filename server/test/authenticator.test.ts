/**
 * The authenticator on a real SQLite store: a credential checked before costs one revocation read
 * per event-loop turn, later calls of the turn answer from that read without waiting, and a
 * revocation is seen by every call of the next turn. A read that fails fails the calls of its turn
 * and is tried again in the next.
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
import { openSqliteStore } from "../src/store/sqlite-store.js";

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The real store, counting revocation reads and failing the next one when told to. */
function counting(store: GatewayStore) {
  const seen = { reads: 0, failNext: false };
  const wrapped: AccessStore = Object.create(store);
  wrapped.revocation = (kind, id) => {
    seen.reads++;
    if (seen.failNext) {
      seen.failNext = false;
      return Promise.reject(new Error("disk I/O error"));
    }
    return store.revocation(kind, id);
  };
  return { wrapped, seen };
}

describe("authenticator", () => {
  let dir: string;
  let store: GatewayStore;
  let authn: Authenticator;
  let seen: { reads: number; failNext: boolean };
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

  it("reads a known token's revocation once per turn and answers later calls of the turn at once", async () => {
    await authn.resolve(token); // now verified
    await nextTurn();
    seen.reads = 0;
    const first = authn.resolve(token);
    assert.ok(first instanceof Promise, "the turn's first call waits for the read");
    const p = await first;
    const later: (Principal | Promise<Principal>)[] = [];
    for (let i = 0; i < 10; i++) later.push(authn.resolve(token));
    assert.equal(seen.reads, 1);
    for (const q of later) {
      assert.ok(!(q instanceof Promise), "a later call of the turn needs no promise");
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

  it("fails the calls of a turn whose read failed, and reads again in the next", async () => {
    await authn.resolve(token);
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
