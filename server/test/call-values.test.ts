/** CallValues: the context values of a call behave as Connect's createContextValues() does. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createContextKey, createContextValues } from "@connectrpc/connect";
import { CallValues } from "../src/call-values.js";

const kName = createContextKey("nobody", { description: "name" });
const kCount = createContextKey(0, { description: "count" });

describe("CallValues", () => {
  for (const [label, make] of [
    ["CallValues", () => new CallValues()],
    ["createContextValues", () => createContextValues()],
  ] as const) {
    it(`${label}: reads defaults, keeps what is set, forgets what is deleted`, () => {
      const v = make();
      assert.equal(v.get(kName), "nobody");
      assert.equal(v.set(kName, "ada").set(kCount, 2), v);
      assert.equal(v.get(kName), "ada");
      assert.equal(v.get(kCount), 2);
      v.set(kCount, 0);
      assert.equal(v.get(kCount), 0);
      assert.equal(v.delete(kName), v);
      assert.equal(v.get(kName), "nobody");
      assert.equal(v.get(kCount), 0);
    });
  }

  it("keeps values apart between calls and keys with the same description", () => {
    const other = createContextKey("x", { description: "name" });
    const a = new CallValues().set(kName, "a");
    const b = new CallValues().set(other, "b");
    assert.equal(a.get(other), "x");
    assert.equal(b.get(kName), "nobody");
  });
});
