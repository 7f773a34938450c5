/**
 * Keeps the domain error catalog and its code mapping in sync, and checks what a client sees.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import * as catalog from "../src/domain/errors.js";
import { errorCodeOf, toConnectError } from "../src/interceptors/error-mapping.js";

type ErrorClass = (new (...args: never[]) => catalog.DomainError) & { name: string };
const errorClasses = (Object.values(catalog) as unknown[]).filter(
  (v) => typeof v === "function" && v.prototype instanceof catalog.DomainError,
) as ErrorClass[];

function instantiate(cls: ErrorClass): catalog.DomainError {
  if (cls === (catalog.InvalidArgumentError as unknown))
    return catalog.InvalidArgumentError.field("f", "bad");
  return new (cls as unknown as new (m: string) => catalog.DomainError)("boom");
}

describe("error catalog", () => {
  it("maps every domain error class to its own code, and every kind is used", () => {
    assert.ok(errorClasses.length >= 8);
    const kinds = new Set<string>();
    for (const cls of errorClasses) {
      const err = instantiate(cls);
      kinds.add(err.kind);
      const mapped = toConnectError(err);
      assert.equal(mapped.code, errorCodeOf[err.kind], `${cls.name} -> ${Code[mapped.code]}`);
      assert.notEqual(mapped.code, Code.Internal);
      assert.equal(mapped.rawMessage, err.message, "the domain message reaches the client");
    }
    assert.deepEqual([...kinds].sort(), Object.keys(errorCodeOf).sort(), "catalog kinds and mapping agree");
    assert.equal(
      new Set(Object.values(errorCodeOf)).size,
      Object.keys(errorCodeOf).length,
      "codes are distinct",
    );
  });

  it("attaches field violations, retry delay and error info", () => {
    const bad = toConnectError(
      new catalog.InvalidArgumentError([
        { field: "type", description: "is required" },
        { field: "payload", description: "too big" },
      ]),
    );
    const br = bad.findDetails(BadRequestSchema)[0];
    assert.deepEqual(
      br?.fieldViolations.map((v) => v.field),
      ["type", "payload"],
    );
    const info = bad.findDetails(ErrorInfoSchema)[0];
    assert.equal(info?.reason, "INVALID_ARGUMENT");

    const limited = toConnectError(new catalog.ResourceExhaustedError("slow down", {}, 1500));
    const retry = limited.findDetails(RetryInfoSchema)[0];
    assert.equal(retry?.retryDelay?.seconds, 1n);
    assert.equal(retry?.retryDelay?.nanos, 500_000_000);
  });

  it("turns anything unexpected into Internal without leaking it", () => {
    const secret = new Error("ENOENT: /var/lib/secret/db.sqlite");
    const mapped = toConnectError(secret);
    assert.equal(mapped.code, Code.Internal);
    assert.equal(mapped.rawMessage, "internal error");
    assert.equal(mapped.cause, secret, "the cause is kept for the log");
    assert.equal(mapped.details.length, 0);
    const passthrough = new ConnectError("late", Code.DeadlineExceeded);
    assert.equal(toConnectError(passthrough), passthrough);
  });
});
