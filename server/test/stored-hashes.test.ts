/**
 * Hashes that are stored and compared later must not change form between versions: a task's
 * request fingerprint (an idempotent re-submit is recognised by it) and an audit record's hash
 * (`audit verify` recomputes it). These are the values the gateway has always computed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { auditHash, genesisHash } from "../src/domain/audit-chain.js";
import { requestFingerprint } from "../src/domain/task-validation.js";

describe("stored hashes", () => {
  it("fingerprints a request by its values, whatever the key order", () => {
    const parts = {
      type: "playbook",
      priority: 2,
      payload: { playbook: "site.yml", 'é"x': "v\n" },
      metadata: {},
      timeoutSeconds: 0,
      onLost: "fail",
      maxAttempts: 3,
      list: [1, "a", null, { b: 1, a: [true] }],
      u: undefined,
    };
    const want = "7d79b60643978445c691933f33251cd42e8c86ae32ef228e2f2ba434f71fc5f7";
    assert.equal(requestFingerprint(parts), want);
    const reordered = Object.fromEntries(Object.entries(parts).reverse());
    reordered.payload = { 'é"x': "v\n", playbook: "site.yml" };
    assert.equal(requestFingerprint(reordered), want);
    assert.notEqual(requestFingerprint({ ...parts, priority: 3 }), want);
    // Escapes, numbers JSON writes in its own way, index-like keys, undefined and lone surrogates.
    const odd = {
      a: 'é"x\n\u0001\\',
      b: [1, -0, Number.NaN, Number.POSITIVE_INFINITY, true, false, null, undefined, "\ud800"],
      c: { "10": 1, "9": 2, z: undefined },
      d: 1e21,
      e: 0.1,
    };
    assert.equal(requestFingerprint(odd), "d2c5569a61e8038662b1044209f28b84a5f866d80fd1a0d68a1d5b9fc35db91b");
  });

  it("hashes an audit record over the previous hash, its sequence and every field", () => {
    const record = {
      time: new Date(1700000000000),
      principal: "key:ab",
      keyId: "ab",
      clientAddress: "127.0.0.1",
      method: "spage.api.SpageAPI/SubmitTask",
      taskId: "t-é",
      code: "ok",
      requestId: "r1",
      detail: "",
    };
    const want = "b8ec950d5e573578df754fd4852f8e6218d995e842178b40be76e522c97bec7a";
    assert.equal(auditHash(genesisHash, 7n, record), want);
    assert.notEqual(auditHash(genesisHash, 8n, record), want);
    assert.notEqual(auditHash(genesisHash, 7n, { ...record, code: "internal" }), want);
  });
});
