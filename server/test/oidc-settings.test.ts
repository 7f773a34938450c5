/**
 * The single sign-on settings: what `serve` accepts, and the message each mistake gets (the
 * gateway does not start, and says which flag or variable to fix). Also the group-to-scope
 * mapping and the groups claim's shapes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { groupsOf, parseGroupScopes, scopesOfGroups } from "../src/auth/oidc/group-scopes.js";
import { ConfigError, parseConfig } from "../src/config.js";

const full = [
  "--oidc-issuer",
  "https://id.example.com/realms/ops",
  "--oidc-client-id",
  "spage",
  "--oidc-client-secret",
  "s3cret",
  "--oidc-group-scopes",
  "ops=tasks:read+tasks:write,admins=admin",
];

function refused(args: string[], message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => parseConfig(args, env),
    (err: unknown) => err instanceof ConfigError && message.test(err.message),
  );
}

describe("single sign-on settings", () => {
  it("are off without an issuer, and complete with one", () => {
    assert.equal(parseConfig([], {}).oidc, undefined);
    const c = parseConfig(full, {}).oidc;
    assert.ok(c);
    assert.equal(c.issuer, "https://id.example.com/realms/ops");
    assert.equal(c.displayName, "id.example.com", "the issuer's host unless --oidc-name says");
    assert.equal(c.audience, "spage", "access tokens must name the client id unless --oidc-audience says");
    assert.equal(c.groupsClaim, "groups");
    assert.deepEqual(
      [...c.groupScopes],
      [
        ["ops", ["tasks:read", "tasks:write"]],
        ["admins", ["admin"]],
      ],
    );
  });

  it("come from SPAGE_OIDC_* variables too, flags winning", () => {
    const env = {
      SPAGE_OIDC_ISSUER: "https://id.example.com",
      SPAGE_OIDC_CLIENT_ID: "from-env",
      SPAGE_OIDC_CLIENT_SECRET: "secret",
      SPAGE_OIDC_GROUP_SCOPES: "ops=tasks:read",
      SPAGE_OIDC_NAME: "Example SSO",
    };
    assert.equal(parseConfig([], env).oidc?.clientId, "from-env");
    assert.equal(parseConfig(["--oidc-client-id", "from-flag"], env).oidc?.clientId, "from-flag");
    assert.equal(parseConfig([], env).oidc?.displayName, "Example SSO");
  });

  it("refuse each mistake with a message naming what to fix", () => {
    refused(["--oidc-client-id", "x"], /--oidc-client-id needs --oidc-issuer \(env SPAGE_OIDC_ISSUER\)/);
    refused(
      ["--oidc-issuer", "http://id.example.com", ...full.slice(2)],
      /invalid --oidc-issuer "http:\/\/id\.example\.com".*https:\/\/ URL \(http:\/\/ only on loopback\)/,
    );
    refused(["--oidc-issuer", "not a url", ...full.slice(2)], /invalid --oidc-issuer "not a url"/);
    refused(full.slice(0, 4), /--oidc-issuer needs --oidc-client-id and --oidc-client-secret/);
    refused(full.slice(0, 6), /--oidc-issuer needs --oidc-group-scopes .*no person gets any scope/);
    refused(
      [...full.slice(0, 6), "--oidc-group-scopes", "ops=tasks:fly"],
      /invalid --oidc-group-scopes .*entry "ops=tasks:fly" names the unknown scope "tasks:fly"/,
    );
    refused(
      [...full.slice(0, 6), "--oidc-group-scopes", "ops"],
      /entry "ops" is not group=scope\[\+scope\.\.\.\]/,
    );
    refused([...full, "--public-url", "https://spage.example.com/app"], /invalid --public-url/);
    // http on loopback is allowed (a provider on the same machine, or a test's).
    assert.ok(parseConfig(["--oidc-issuer", "http://127.0.0.1:8080", ...full.slice(2)], {}).oidc);
  });

  it("map groups to the union of their scopes, from arrays, strings and nested claims", () => {
    const map = parseGroupScopes([
      "ops=tasks:read tasks:write",
      "admins=admin+tasks:read",
      "ops=tasks:cancel",
    ]);
    assert.ok(typeof map !== "string");
    assert.deepEqual(scopesOfGroups(map, ["ops", "admins", "unmapped"]), [
      "tasks:read",
      "tasks:write",
      "tasks:cancel",
      "admin",
    ]);
    assert.deepEqual(scopesOfGroups(map, ["unmapped"]), []);
    assert.deepEqual(groupsOf({ groups: ["a", 3, "b"] }, "groups"), ["a", "b"]);
    assert.deepEqual(groupsOf({ roles: "a b,c" }, "roles"), ["a", "b", "c"]);
    assert.deepEqual(groupsOf({ realm_access: { roles: ["ops"] } }, "realm_access.roles"), ["ops"]);
    assert.deepEqual(groupsOf({}, "realm_access.roles"), []);
  });
});
