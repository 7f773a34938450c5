/**
 * Single sign-on against a real OpenID provider (oidc-provider, in this process on 127.0.0.1):
 * people sign in from the dashboard in headless Chromium through the provider's own login and
 * consent pages and land with the scopes their groups map to; a person with no mapped group gets a
 * page saying so; the provider's access tokens work as Bearer credentials over every client, and
 * expired, forged, wrong-audience and wrong-issuer ones are refused with `unauthenticated` and
 * change nothing; a rotated JWKS is picked up; sign-out and RevokePersonSessions end sessions; the
 * audit log names the person.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Browser, Page } from "playwright-core";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { buildDashboard, dashboardIsStale } from "../../web/build-if-stale.js";
import { clientNames, generousRates, makeClient } from "./helpers/auth-clients.js";
import { chromiumSkip, eventually, freePort, launchChromium, screenshot } from "./helpers/browser.js";
import { runCli } from "./helpers/cli-run.js";
import { startOidcProvider, type TestOidcProvider } from "./helpers/oidc-provider.js";
import { CallError, type SuiteClient, str } from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const people = {
  alice: { email: "alice@example.com", name: "Alice Example", groups: ["ops", "staff"] },
  carol: { email: "carol@example.com", name: "Carol Admin", groups: ["admins"] },
  bob: { email: "bob@example.com", name: "Bob Visitor", groups: ["visitors"] },
};

let provider: TestOidcProvider;
let server: TestServer;
let admin: SuiteClient;
const opened: SuiteClient[] = [];

function client(token: string, name: (typeof clientNames)[number] = "connect-node gRPC h2"): SuiteClient {
  const c = makeClient(name, server.url, token);
  opened.push(c);
  return c;
}

/** The call fails with `code`, its message matching `message`. */
async function refused(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CallError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

async function audit(principal: string): Promise<JsonObject[]> {
  const r = await admin.unary(SpageAPI, "ListAuditEvents", { principal, limit: 1000 });
  return (r.events as JsonObject[] | undefined) ?? [];
}

const taskTotal = async () => Number((await admin.unary(SpageAPI, "ListTasks", { limit: 1 })).total ?? 0);

describe("single sign-on through an OpenID provider", { timeout: 170_000 }, () => {
  const personOf = (subject: string) => `person:${provider.issuer}#${subject}`;

  before(async () => {
    const port = await freePort();
    provider = await startOidcProvider({
      redirectUris: [`http://127.0.0.1:${port}/auth/oidc/callback`],
      people,
    });
    server = await startTestServer([
      "--auth",
      "on",
      "--auth-failures-per-minute",
      "0",
      "--rate-limits",
      generousRates,
      "--port",
      String(port),
      "--oidc-issuer",
      provider.issuer,
      "--oidc-client-id",
      provider.clientId,
      "--oidc-client-secret",
      provider.clientSecret,
      "--oidc-name",
      "Example ID",
      "--oidc-group-scopes",
      "ops=tasks:read+tasks:write+tasks:cancel,admins=admin+tasks:read",
    ]);
    admin = makeClient("connect-node gRPC h2", server.url, server.adminKey);
    opened.push(admin);
  });

  after(async () => {
    for (const c of opened) await c.close();
    await server?.close();
    await provider?.close();
  });

  describe("the provider's access tokens as Bearer credentials", () => {
    for (const name of clientNames) {
      it(`a valid token is let in with its groups' scopes over ${name}`, async () => {
        const c = client(await provider.accessToken("alice"), name);
        const submitted = await c.unary(SpageAPI, "SubmitTask", {
          type: "playbook",
          payload: { playbook: "site.yml" },
        });
        const taskId = str(submitted.taskId);
        const records = await audit(personOf("alice"));
        const mine = records.find((r) => r.taskId === taskId && r.method === "spage.api.SpageAPI/SubmitTask");
        assert.ok(mine, "the submit is audited under the person");
        assert.equal(mine.keyId ?? "", "");
        assert.match(str(mine.detail), /^email=alice@example\.com/);
        // Alice's groups give no admin scope.
        await refused(c.unary(SpageAPI, "ListApiKeys", {}), "permission_denied", /needs scope "admin"/);
      });
    }

    it("expired, forged, wrong-audience and wrong-issuer tokens are refused and change nothing", async () => {
      const before = await taskTotal();
      const bad: [string, string, RegExp][] = [
        [
          "expired",
          await provider.accessToken("alice", { expiresIn: "-1m" }),
          /access token refused: it expired at /,
        ],
        [
          "wrongly signed",
          await provider.forgedToken("alice"),
          /access token refused: its signature does not verify/,
        ],
        [
          "for another audience",
          await provider.accessToken("alice", { aud: "someone-else" }),
          /access token refused: it is for audience "someone-else", not "spage-gateway"/,
        ],
        [
          "from another issuer",
          await provider.accessToken("alice", { iss: "https://evil.example" }),
          /access token refused: it was issued by "https:\/\/evil\.example", not by http:\/\/127\.0\.0\.1/,
        ],
      ];
      for (const [what, token, message] of bad) {
        for (const name of ["grpc-js h2", "fetch Connect JSON h1"] as const) {
          const c = client(token, name);
          await refused(
            c.unary(SpageAPI, "SubmitTask", { type: "playbook", payload: { playbook: what } }),
            "unauthenticated",
            message,
          );
        }
      }
      assert.equal(await taskTotal(), before, "no refused call stored a task");
      const refusedRecords = (await audit("unknown")).filter((r) => r.code === "unauthenticated");
      assert.ok(refusedRecords.length >= bad.length * 2, "each refusal is audited");
    });

    it("a token signed with a rotated-in key is accepted once the JWKS is read again; the old key's is not", async () => {
      const old = await provider.accessToken("alice");
      const c = client(old);
      await c.unary(SpageAPI, "ListTasks", { limit: 1 });
      const fetches = provider.jwksFetches;
      await provider.rotateKeys();
      const fresh = await provider.accessToken("alice");
      const f = client(fresh);
      // Unknown key ids refetch the JWKS at most once per cooldown (5 s), so a flood of forged
      // tokens cannot hammer the provider: the new key is taken once the cooldown allows.
      await eventually(() => f.unary(SpageAPI, "ListTasks", { limit: 1 }), 15_000, 500);
      assert.ok(provider.jwksFetches > fetches, "the JWKS was fetched again");
      await refused(
        client(old).unary(SpageAPI, "ListTasks", { limit: 1 }),
        "unauthenticated",
        /access token refused: it is signed with a key .* does not publish/,
      );
    });

    it("a person with no mapped group is known but may do nothing", async () => {
      const c = client(await provider.accessToken("bob"));
      await refused(
        c.unary(SpageAPI, "ListTasks", { limit: 1 }),
        "permission_denied",
        /ListTasks needs scope "tasks:read"; these credentials have no scopes/,
      );
    });
  });

  describe("signing in to the dashboard (Chromium)", { skip: chromiumSkip }, () => {
    let browser: Browser;
    let page: Page;

    before(async () => {
      if (dashboardIsStale()) await buildDashboard();
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
    });

    /** Signs `login` in through the provider's pages from a fresh browser context. */
    async function signIn(login: string): Promise<Page> {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
      const p = await context.newPage();
      p.setDefaultTimeout(15_000);
      await p.goto(`${server.url}/#/daemons`);
      await p.getByRole("link", { name: "Sign in with Example ID" }).click();
      await p.waitForURL((u) => u.href.startsWith(provider.issuer));
      await p.locator("input[name=login]").fill(login);
      await p.locator("input[name=password]").fill("any password");
      await p.locator("button[type=submit]").click();
      // The provider asks to consent to what the gateway wants to know.
      await p.getByRole("button", { name: "Continue" }).click();
      return p;
    }

    const stored = (p: Page) =>
      p.evaluate<{ token: string; permissions: string[]; person?: { email: string } }>(
        `JSON.parse(sessionStorage.getItem("spage.session"))`,
      );

    it("a mapped person lands on the dashboard with their scopes, named in the header and the audit log", async () => {
      page = await signIn("alice");
      await page.locator("#daemons-title, h2", { hasText: "Daemons" }).first().waitFor();
      assert.match(
        page.url(),
        /^http:\/\/127\.0\.0\.1:\d+\/#\/daemons$/,
        "back where the sign-in started, no token in the URL",
      );
      assert.equal(await page.locator("[data-testid=signed-in-as]").textContent(), "Alice Example");
      await page.locator('.conn[data-state="live"]').waitFor();
      const s = await stored(page);
      assert.deepEqual([...s.permissions].sort(), ["tasks:cancel", "tasks:read", "tasks:write"]);
      assert.equal(s.person?.email, "alice@example.com");
      await screenshot(page, "sso-signed-in.png");

      const records = await audit(personOf("alice"));
      const signedIn = records.find((r) => r.method === "oidc/sign-in");
      assert.ok(signedIn, "the sign-in is audited");
      assert.equal(signedIn.code ?? "ok", "ok");
      assert.match(
        str(signedIn.detail),
        /^email=alice@example\.com; session \w+ with tasks:read,tasks:write,tasks:cancel$/,
      );

      // The session token works from other clients too, as the person.
      const c = client(s.token, "fetch Connect JSON h1");
      const v = await c.unary(SpageAPI, "ValidateToken", { token: s.token });
      assert.equal(v.valid, true);
      // The token was handed over once: the page asking again (its cookies and all) gets nothing.
      const again = await page.evaluate<number>(
        `fetch("/auth/oidc/session", { method: "POST", credentials: "same-origin" }).then((r) => r.status)`,
      );
      assert.equal(again, 404);
    });

    it("signing out ends the gateway session at once", async () => {
      const s = await stored(page);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("link", { name: "Sign in with Example ID" }).waitFor();
      const v = await admin.unary(SpageAPI, "ValidateToken", { token: s.token });
      assert.equal(v.valid ?? false, false);
      assert.match(str((v.error as JsonObject).message), /session token was revoked at/);
      await page.context().close();
    });

    it("a person whose groups map to no scope is told so, and gets no session", async () => {
      const p = await signIn("bob");
      const alert = p.getByRole("alert");
      await alert.waitFor();
      assert.equal(await p.locator("h1").textContent(), "No access to this gateway");
      assert.match(
        (await alert.textContent()) ?? "",
        /Bob Visitor signed in, but none of their groups \(visitors\) is given a scope here/,
      );
      assert.equal(await p.locator("#tasks-title").count(), 0);
      await screenshot(p, "sso-no-access.png");
      const denied = (await audit(personOf("bob"))).find((r) => r.method === "oidc/sign-in");
      assert.equal(denied?.code, "permission_denied");
      await p.context().close();
    });

    it("RevokePersonSessions ends every session of a person", async () => {
      const first = await signIn("carol");
      await first.locator("[data-testid=signed-in-as]").waitFor();
      const a = (await stored(first)).token;
      const second = await signIn("carol");
      await second.locator("[data-testid=signed-in-as]").waitFor();
      const b = (await stored(second)).token;
      // Carol is an admin through her group: she can read the audit log.
      await client(a).unary(SpageAPI, "ListAuditEvents", { limit: 1 });

      await refused(
        admin.unary(SpageAPI, "RevokePersonSessions", {}),
        "invalid_argument",
        /subject: required/,
      );
      const r = await admin.unary(SpageAPI, "RevokePersonSessions", {
        subject: "carol",
        issuer: provider.issuer,
      });
      assert.equal(r.revoked, 2);
      for (const t of [a, b]) {
        await refused(client(t).unary(SpageAPI, "ListTasks", { limit: 1 }), "unauthenticated", /revoked/);
      }
      // The open dashboards notice and go back to the sign-in page.
      await second.reload();
      await second.getByRole("link", { name: "Sign in with Example ID" }).waitFor();
      await first.context().close();
      await second.context().close();

      // The same from the command line, through the gateway.
      const third = await signIn("carol");
      await third.locator("[data-testid=signed-in-as]").waitFor();
      const c = (await stored(third)).token;
      const cli = await runCli([
        "sessions",
        "revoke",
        "--subject",
        "carol",
        "--endpoint",
        server.url,
        "--token",
        server.adminKey,
      ]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.equal(cli.stdout.trim(), "Revoked 1 session of carol.");
      await refused(client(c).unary(SpageAPI, "ListTasks", { limit: 1 }), "unauthenticated", /revoked/);
      const missing = await runCli([
        "sessions",
        "revoke",
        "--endpoint",
        server.url,
        "--token",
        server.adminKey,
      ]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /sessions revoke needs --subject SUB/);
      await third.context().close();
    });
  });

  it("the sign-in routes refuse forged and stale callbacks with a page that says why", async () => {
    const forged = await fetch(`${server.url}/auth/oidc/callback?code=abc&state=xyz`);
    assert.equal(forged.status, 400);
    assert.match(await forged.text(), /this sign-in was not started here, or took longer than 10 minutes/);
    const denied = await fetch(`${server.url}/auth/oidc/callback?error=access_denied&error_description=nope`);
    assert.equal(denied.status, 400);
    assert.match(await denied.text(), /the provider refused the sign-in: access_denied \(nope\)/);
    const info = await (await fetch(`${server.url}/auth/oidc`)).json();
    assert.deepEqual(info, { enabled: true, name: "Example ID" });
    // The return route cannot leave the dashboard.
    const login = await fetch(
      `${server.url}/auth/oidc/login?return=${encodeURIComponent("//evil.example")}`,
      {
        redirect: "manual",
      },
    );
    assert.equal(login.status, 302);
    assert.ok(login.headers.get("location")?.startsWith(`${provider.issuer}/`));
    assert.match(
      login.headers.get("set-cookie") ?? "",
      /spage_sign_in=[\w-]+; Path=\/auth\/oidc\/callback; HttpOnly; SameSite=Lax/,
    );
  });
});

describe("a gateway whose OpenID provider is down", () => {
  let down: TestServer;
  let issuer: string;
  before(async () => {
    issuer = `http://127.0.0.1:${await freePort()}`;
    down = await startTestServer([
      "--auth",
      "on",
      "--auth-failures-per-minute",
      "0",
      "--oidc-issuer",
      issuer,
      "--oidc-client-id",
      "spage-gateway",
      "--oidc-client-secret",
      "secret",
      "--oidc-group-scopes",
      "ops=tasks:read",
    ]);
  });
  after(async () => {
    await down?.close();
  });

  it("starts and serves keys; sign-in and access tokens say the provider cannot be reached", async () => {
    const keyed = makeClient("fetch Connect JSON h1", down.url, down.adminKey);
    try {
      await keyed.unary(SpageAPI, "ListTasks", { limit: 1 });
    } finally {
      await keyed.close();
    }
    const login = await fetch(`${down.url}/auth/oidc/login`, { redirect: "manual" });
    assert.equal(login.status, 502);
    assert.match(await login.text(), new RegExp(`the OpenID provider ${issuer} could not be discovered`));
    const jwt = makeClient("fetch Connect JSON h1", down.url, "aaaa.bbbb.cccc");
    try {
      await refused(
        jwt.unary(SpageAPI, "ListTasks", { limit: 1 }),
        "unauthenticated",
        /access token not checked: the OpenID provider .* could not be discovered/,
      );
    } finally {
      await jwt.close();
    }
  });
});
