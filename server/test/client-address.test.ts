/**
 * The real client address behind proxies: forwarding headers count only from trusted proxies, the
 * client is the nearest hop that is not one of them, and a header from anyone else marks the
 * request as of unknown origin.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClientAddressResolver, parseProxyEntry } from "../src/http/client-address.js";

describe("client address", () => {
  const resolve = createClientAddressResolver(["127.0.0.1", "::1", "10.0.0.0/8"]);

  it("is the socket's peer when no forwarding header is sent", () => {
    assert.deepEqual(resolve("192.0.2.9", undefined, undefined), {
      address: "192.0.2.9",
      viaUntrustedProxy: false,
    });
  });

  it("does not believe forwarding headers from a peer that is not a trusted proxy", () => {
    for (const peer of ["192.0.2.9", "11.0.0.1"]) {
      assert.deepEqual(resolve(peer, undefined, "127.0.0.1"), { address: peer, viaUntrustedProxy: true });
      assert.deepEqual(resolve(peer, "for=127.0.0.1", undefined), { address: peer, viaUntrustedProxy: true });
    }
  });

  it("takes the nearest hop that is not a trusted proxy from X-Forwarded-For", () => {
    assert.equal(resolve("127.0.0.1", undefined, "203.0.113.7").address, "203.0.113.7");
    assert.equal(
      resolve("::ffff:127.0.0.1", undefined, "198.51.100.1, 203.0.113.7, 10.1.2.3").address,
      "203.0.113.7",
    );
    assert.equal(resolve("127.0.0.1", undefined, ["198.51.100.1", "10.1.2.3"]).address, "198.51.100.1");
    assert.equal(
      resolve("127.0.0.1", undefined, "10.0.0.5, 127.0.0.1").address,
      "10.0.0.5",
      "only proxies: the farthest",
    );
  });

  it("reads RFC 7239 Forwarded, with quoted IPv6 and ports, before X-Forwarded-For", () => {
    const r = resolve("::1", 'for=192.0.2.43;proto=https, for="[2001:db8:cafe::17]:4711"', "198.51.100.1");
    assert.deepEqual(r, { address: "2001:db8:cafe::17", viaUntrustedProxy: false });
    assert.equal(resolve("::1", "for=192.0.2.43:8080", undefined).address, "192.0.2.43");
  });

  it("treats a hop it cannot read (an obfuscated or unknown identifier) as unknown origin", () => {
    assert.deepEqual(resolve("127.0.0.1", "for=unknown", undefined), {
      address: "127.0.0.1",
      viaUntrustedProxy: true,
    });
    assert.deepEqual(resolve("127.0.0.1", undefined, "_hidden"), {
      address: "127.0.0.1",
      viaUntrustedProxy: true,
    });
  });

  it("parses trusted proxy entries: addresses and CIDRs, nothing else", () => {
    assert.deepEqual(parseProxyEntry("10.0.0.0/8"), { address: "10.0.0.0", prefix: 8, family: "ipv4" });
    assert.deepEqual(parseProxyEntry("::1"), { address: "::1", prefix: 128, family: "ipv6" });
    for (const bad of ["localhost", "10.0.0.0/33", "10.0.0.0/x", "::1/129", ""]) {
      assert.equal(parseProxyEntry(bad), undefined, bad);
    }
  });
});
