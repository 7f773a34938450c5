/**
 * The dashboard end to end in a real browser (Debian's Chromium through playwright-core), against a
 * real gateway child process (--auth on, its own data dir, a fixed port so it can be restarted on
 * it) and a real `spage-gateway agent` whose command runs the fake Spage core for site.yml and a
 * long `sleep` for slow.yml.
 *
 * One page lives through the whole file, as a user's tab would: sign in, submit and follow a run,
 * cancel one, watch the list fill live, see the server's field errors, survive a gateway killed
 * with SIGKILL and restarted, list daemons; then phone width and the dark theme. The page is never
 * reloaded (a marker set on `window` after sign-in must still be there). Screenshots of each view
 * go to artifacts/screenshots/. The last test, in a second tab, shows a known bug and fails until it
 * is fixed: a failed first listing makes the tab replay the whole event log.
 *
 * Without /usr/bin/chromium every test is reported as skipped, with the reason.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { buildDashboard, dashboardIsStale } from "../../web/build-if-stale.js";
import { shellQuote } from "../src/agent/command-template.js";
import { killGroup } from "./helpers/agent-process.js";
import {
  chromiumSkip,
  eventually,
  freePort,
  launchChromium,
  luminance,
  screenshot,
} from "./helpers/browser.js";
import { type CliChild, connectCall, startCli } from "./helpers/cli-run.js";
import { type GatewayProcess, startGatewayProcess } from "./helpers/gateway-process.js";

const skip = chromiumSkip;
const API = "spage.api.SpageAPI";
const keyPattern = /spk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/;
const fakeCore = fileURLToPath(new URL("./fixtures/fake-spage-core.ts", import.meta.url));
const daemonId = "dashboard-agent";
/** Tasks the agent can never take (no daemon carries this label): they stay PENDING. */
const unreachable = "zone=nowhere";

/** site.yml runs the fake Spage core; slow.yml sleeps until canceled. */
const agentCommand = [
  "if [ {playbook} = slow.yml ]; then exec sleep 300; else exec",
  shellQuote(process.execPath),
  "--import tsx",
  shellQuote(fakeCore),
  "--daemon-grpc {endpoint} --task-id {task_id} --playbook {playbook}; fi",
].join(" ");

let dataDir = "";
let port = 0;
let base = "";
let adminKey = "";
let gateway: GatewayProcess | undefined;
let agent: CliChild | undefined;
let launching: Promise<Browser> | undefined;
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];

// Tasks made along the way, for later steps.
let siteTask = "";
let slowTask = "";
let apiTask = "";
let sessionToken = "";

function startGateway(): GatewayProcess {
  return startGatewayProcess(
    ["--auth", "on", "--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir],
    { SPAGE_LOG_LEVEL: "info" },
  );
}

/** A Connect JSON call with the admin key; asserts it succeeded. */
async function call(method: string, body: unknown, token = adminKey): Promise<Record<string, unknown>> {
  const r = await connectCall(base, `${API}/${method}`, body, token);
  assert.equal(r.status, 200, `${method}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Task ids of the list's rows, in order. */
function rowIds(): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll("tr[data-task-id]")].map((r) => r.getAttribute("data-task-id"))`,
  );
}

/** The status badge of the detail view has this text (e.g. "completed"). */
function detailStatus(text: string, timeout = 20_000): Promise<void> {
  return page.locator("[data-testid=task-status]", { hasText: new RegExp(`^${text}$`) }).waitFor({ timeout });
}

/** The "x → y" state changes of the detail view's timeline. */
async function timelineChanges(): Promise<string[]> {
  const texts = await page.locator('ol.timeline li[data-type="task.status"]').allTextContents();
  return texts.map((t) => /(\S+ → [^\s(:]+)/.exec(t)?.[1] ?? t);
}

/** Hash navigation through the header, as a user clicks it. */
async function go(view: "tasks" | "submit" | "daemons"): Promise<void> {
  await page.locator(`header nav a[href="#/${view}"]`).click();
  const title = { tasks: "#tasks-title", submit: "#submit-title", daemons: "#daemons-title" }[view];
  await page.locator(title).waitFor();
}

/** The page was not reloaded since sign-in, and threw nothing. */
async function assertSamePage(): Promise<void> {
  assert.equal(
    await page.evaluate<boolean>("window.__spageNoReload === true"),
    true,
    "the page was reloaded",
  );
  assert.deepEqual(pageErrors, [], "uncaught errors in the page");
}

describe("dashboard in Chromium", { timeout: 170_000 }, () => {
  before(
    async () => {
      if (skip) return;
      if (dashboardIsStale()) await buildDashboard();
      dataDir = mkdtempSync(join(tmpdir(), "spage-dashboard-"));
      port = await freePort();
      base = `http://127.0.0.1:${port}`;
      gateway = startGateway();
      await gateway.port;
      const g = gateway;
      adminKey = await eventually(() => {
        const m = keyPattern.exec(g.stderr());
        assert.ok(m, `no admin key on stderr:\n${g.stderr()}`);
        return m[0];
      }, 10_000);
      agent = startCli([
        "agent",
        "--endpoint",
        base,
        "--token",
        adminKey,
        "--daemon-id",
        daemonId,
        "--capacity",
        "2",
        "--kill-grace-ms",
        "2000",
        "--command",
        agentCommand,
      ]);
      launching = launchChromium();
      await agent.waitForStderr((l) => l.includes("connected to the gateway"), 20_000);
      browser = await launching;
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
      page = await context.newPage();
      page.setDefaultTimeout(15_000);
      page.on("pageerror", (err) => pageErrors.push(err.stack ?? err.message));
    },
    { timeout: 120_000 },
  );

  after(async () => {
    // Closed even when before() failed between launching it and getting it.
    await (await launching?.catch(() => undefined))?.close().catch(() => {});
    // The agent starts each task's command in its own process group: kill those too.
    const taskPids = (agent?.stderr() ?? "")
      .split("\n")
      .flatMap((l) => /"msg":"task started".*?"pid":(\d+)/.exec(l)?.[1] ?? [])
      .map(Number);
    for (const child of [agent?.child, gateway?.child]) {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
    for (const pid of taskPids) killGroup(pid);
    await Promise.all([agent?.exited, gateway?.exited]);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("1. signing in: a wrong key shows a clear error; the admin key opens the task list, live", {
    skip,
  }, async () => {
    await page.goto(`${base}/`);
    await page.locator("#api-key").waitFor();
    await page.locator("#api-key").fill(`spk_0123456789abcdef_${"A".repeat(43)}`);
    await page.locator('form[aria-label="Sign in"] button[type=submit]').click();
    const alert = page.locator('form[aria-label="Sign in"] [role=alert]');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? "", /invalid API key/i);
    assert.equal(await page.evaluate<string | null>(`sessionStorage.getItem("spage.session")`), null);
    await screenshot(page, "01-sign-in-error.png");

    await page.locator("#api-key").fill(adminKey);
    await page.locator('form[aria-label="Sign in"] button[type=submit]').click();
    await page.locator("#tasks-title").waitFor();
    await page.locator('.conn[data-state="live"]').waitFor();
    await page.evaluate("window.__spageNoReload = true");
    const stored = JSON.parse(
      (await page.evaluate<string | null>(`sessionStorage.getItem("spage.session")`)) ?? "{}",
    ) as { token?: string };
    sessionToken = stored.token ?? "";
    assert.match(sessionToken, /^sps_/, "a session token, not the key, is kept in the tab");
    assert.equal((await rowIds()).length, 0);
    await assertSamePage();
  });

  it("2. a task submitted from the form runs to completed live: hosts, output, timeline", {
    skip,
  }, async () => {
    await go("submit");
    await page.locator("form.submit input[name=playbook]").fill("site.yml");
    await page.locator("form.submit button[type=submit]").click();
    await page.waitForFunction(`location.hash.startsWith("#/tasks/") && location.hash.length > 8`);
    siteTask = decodeURIComponent((await page.evaluate<string>("location.hash")).slice("#/tasks/".length));
    await page.locator("#task-title", { hasText: siteTask }).waitFor();
    await detailStatus("completed", 30_000);

    const hostCells = (host: string) => page.locator(`tr[data-host="${host}"] td`).allTextContents();
    // Host, ok, failed, skipped, running, error.
    await eventually(async () => assert.deepEqual(await hostCells("web1"), ["web1", "3", "0", "0", "0", ""]));
    await eventually(async () => assert.deepEqual(await hostCells("web2"), ["web2", "2", "0", "1", "0", ""]));
    assert.equal(await page.locator("tr[data-host]").count(), 2);

    const output = page.locator("[data-testid=output]");
    await eventually(async () => {
      const text = (await output.textContent()) ?? "";
      for (const line of [
        "PLAY [site.yml] ****",
        "TASK [Gathering Facts] ****",
        "ok: [web1]",
        "skipping: [web2]",
        "PLAY RECAP ****",
        "web1 : ok=3 failed=0 skipped=0",
        "web2 : ok=2 failed=0 skipped=1",
      ]) {
        assert.ok(text.includes(line), `output lacks ${JSON.stringify(line)}:\n${text}`);
      }
    });
    await eventually(async () =>
      assert.deepEqual(await timelineChanges(), [
        "pending → assigned",
        "assigned → running",
        "running → completed",
      ]),
    );
    await screenshot(page, "03-task-detail.png");
    await assertSamePage();
  });

  it("3. a running task canceled from its page (with confirmation) ends canceled live", {
    skip,
  }, async () => {
    await go("submit");
    await page.locator("form.submit input[name=playbook]").fill("slow.yml");
    await page.locator("form.submit button[type=submit]").click();
    await page.waitForFunction(
      `location.hash.startsWith("#/tasks/") && location.hash !== ${JSON.stringify(`#/tasks/${encodeURIComponent(siteTask)}`)}`,
    );
    slowTask = decodeURIComponent((await page.evaluate<string>("location.hash")).slice("#/tasks/".length));
    assert.notEqual(slowTask, siteTask);
    await page.locator("#task-title", { hasText: slowTask }).waitFor();
    await detailStatus("running");

    await page.getByRole("button", { name: "Cancel task" }).click();
    const confirm = page.getByRole("alertdialog", { name: "Confirm cancel" });
    await confirm.waitFor();
    await confirm.getByRole("button", { name: "Yes, cancel it" }).click();
    await detailStatus("canceled", 20_000);
    await eventually(async () => {
      const changes = await timelineChanges();
      assert.deepEqual(
        changes.slice(-2),
        ["running → canceling", "canceling → canceled"],
        changes.join(", "),
      );
    });
    assert.equal(await page.getByRole("button", { name: "Cancel task" }).count(), 0);
    await assertSamePage();
  });

  it("4. the task list shows final statuses and a task submitted through the API appears live", {
    skip,
  }, async () => {
    assert.ok(siteTask && slowTask, "steps 2 and 3 made their tasks");
    await go("tasks");
    await page.locator(`tr[data-task-id="${siteTask}"][data-status="COMPLETED"]`).waitFor();
    await page.locator(`tr[data-task-id="${slowTask}"][data-status="CANCELED"]`).waitFor();
    await page.locator('.conn[data-state="live"]').waitFor();
    assert.deepEqual(await rowIds(), [slowTask, siteTask], "newest first");

    const r = await call("SubmitTask", { type: "playbook", payload: { playbook: "site.yml" } });
    apiTask = String(r.taskId);
    await page.locator(`tr[data-task-id="${apiTask}"]`).waitFor({ timeout: 10_000 });
    await page.locator(`tr[data-task-id="${apiTask}"][data-status="COMPLETED"]`).waitFor({ timeout: 30_000 });
    assert.deepEqual(await rowIds(), [apiTask, slowTask, siteTask]);
    await page.locator("section[aria-labelledby=tasks-title] p.muted", { hasText: "3 tasks" }).waitFor();
    // The header's counts follow too (re-read at most a second after events).
    await page.locator("[data-testid=count-running] .n", { hasText: /^0$/ }).waitFor({ timeout: 5000 });
    await page.locator("[data-testid=count-pending] .n", { hasText: /^0$/ }).waitFor({ timeout: 5000 });
    await screenshot(page, "02-task-list.png");
    await assertSamePage();
  });

  it("5. the submit form shows the server's field error next to the field", { skip }, async () => {
    await go("submit");
    const type = page.locator("form.submit input[name=type]");
    await type.fill("");
    await page.locator("form.submit button[type=submit]").click();
    // The message is inside the field's own label, and the field points at it.
    const fieldError = page.locator("form.submit label:has(input[name=type]) #err-type");
    await fieldError.waitFor();
    assert.match((await fieldError.textContent()) ?? "", /is required/);
    assert.equal(await type.getAttribute("aria-invalid"), "true");
    assert.equal(await type.getAttribute("aria-describedby"), "err-type");
    assert.equal(await page.evaluate<string>("location.hash"), "#/submit", "stays on the form");
    await screenshot(page, "04-submit-error.png");
    await assertSamePage();
  });

  it("6. a gateway killed and restarted: the page reconnects, catches up, shows each task once", {
    skip,
  }, async (t) => {
    assert.ok(gateway && apiTask, "step 4 ran");
    await go("tasks");
    await page.locator('.conn[data-state="live"]').waitFor();
    // A task no daemon can take stays PENDING: shown in the list, and in a second tab's detail view
    // (same session, as a tab opened from this one gets).
    const waiting = String(
      (await call("SubmitTask", { type: "job", payload: { target_labels: unreachable } })).taskId,
    );
    await page.locator(`tr[data-task-id="${waiting}"][data-status="PENDING"]`).waitFor();
    const session = await page.evaluate<string>(`sessionStorage.getItem("spage.session")`);
    const detail = await page.context().newPage();
    detail.on("pageerror", (err) => pageErrors.push(`detail tab: ${err.stack ?? err.message}`));
    await detail.addInitScript(`sessionStorage.setItem("spage.session", ${JSON.stringify(session)})`);
    await detail.goto(`${base}/#/tasks/${encodeURIComponent(waiting)}`);
    const detailStatusIs = (text: string) =>
      detail.locator("[data-testid=task-status]", { hasText: new RegExp(`^${text}$`) }).waitFor();
    await detailStatusIs("pending");

    const old = gateway;
    assert.ok(old.child.pid);
    process.kill(old.child.pid, "SIGKILL");
    assert.equal(await old.exited, 137);
    await page.locator('.conn[data-state="reconnecting"]').waitFor({ timeout: 10_000 });
    await screenshot(page, "06-reconnecting.png");
    assert.equal((await rowIds()).length, 4, "rows stay while the gateway is down");

    gateway = startGateway();
    await gateway.port;
    // Right after the restart, before the page is back: one task canceled, a new one that stays
    // pending, and a new one canceled at once.
    const stateAtSubmit = await page.locator(".conn").getAttribute("data-state");
    await call("CancelTask", { taskId: waiting, reason: "while the page was away" });
    const pending = String(
      (await call("SubmitTask", { type: "job", payload: { target_labels: unreachable } })).taskId,
    );
    const canceled = String(
      (await call("SubmitTask", { type: "job", payload: { target_labels: unreachable } })).taskId,
    );
    await call("CancelTask", { taskId: canceled, reason: "while the page was away" });
    t.diagnostic(`connection indicator when the missed changes were made: ${stateAtSubmit}`);

    await page.locator('.conn[data-state="live"]').waitFor({ timeout: 20_000 });
    await page.locator(`tr[data-task-id="${waiting}"][data-status="CANCELED"]`).waitFor({ timeout: 10_000 });
    await page.locator(`tr[data-task-id="${pending}"][data-status="PENDING"]`).waitFor({ timeout: 10_000 });
    await page.locator(`tr[data-task-id="${canceled}"][data-status="CANCELED"]`).waitFor({ timeout: 10_000 });
    const ids = await rowIds();
    assert.equal(new Set(ids).size, ids.length, `duplicate rows: ${ids.join(", ")}`);
    assert.deepEqual(
      ids,
      [canceled, pending, waiting, apiTask, slowTask, siteTask],
      "each once, newest first",
    );
    await page.locator("section[aria-labelledby=tasks-title] p.muted", { hasText: "6 tasks" }).waitFor();
    await page.locator("[data-testid=count-pending] .n", { hasText: /^1$/ }).waitFor({ timeout: 5000 });

    // The detail tab resumed its own stream: the change it missed, once.
    await detailStatusIs("canceled");
    await eventually(async () => {
      const items = await detail.evaluate<string[]>(
        `[...document.querySelectorAll("ol.timeline li")].map((li) => li.getAttribute("data-type"))`,
      );
      assert.deepEqual(items, ["task.submitted", "task.status"]);
    });
    assert.match(
      (await detail.locator('ol.timeline li[data-type="task.status"]').textContent()) ?? "",
      /pending → canceled \(while the page was away\)/,
    );
    await detail.close();

    // The session token is in the store: still signed in, and the token still valid.
    assert.equal(await page.locator("#api-key").count(), 0, "signed out by the restart");
    const stored = JSON.parse(
      (await page.evaluate<string | null>(`sessionStorage.getItem("spage.session")`)) ?? "{}",
    ) as { token?: string };
    assert.equal(stored.token, sessionToken);
    const v = await call("ValidateToken", { token: sessionToken }, sessionToken);
    assert.equal(v.valid, true, JSON.stringify(v));
    await assertSamePage();
  });

  it("7. the daemons view shows the agent: hostname, capacity 2, connected", { skip }, async () => {
    await go("daemons");
    const row = page.locator(`tr[data-daemon-id="${daemonId}"]`);
    await row.waitFor();
    // Daemon, host, state, capacity, running, labels, last heartbeat. The agent reconnects after
    // step 6's restart with its own backoff (at most 10 s).
    await eventually(async () => {
      const cells = await row.locator("td").allTextContents();
      assert.deepEqual(cells.slice(0, 4), [daemonId, hostname(), "connected", "2"]);
    }, 20_000);
    await screenshot(page, "05-daemons.png");
    await assertSamePage();
  });

  it("8. phone width has no horizontal page overflow; the dark scheme has a dark background", {
    skip,
  }, async () => {
    assert.ok(browser);
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const p = await phone.newPage();
      p.setDefaultTimeout(15_000);
      await p.goto(`${base}/`);
      await p.locator("#api-key").fill(adminKey);
      await p.locator('form[aria-label="Sign in"] button[type=submit]').click();
      await p.locator("#tasks-title").waitFor();
      await p.locator('.conn[data-state="live"]').waitFor();
      await p.locator("tr[data-task-id]").first().waitFor();
      const overflow = await p.evaluate<{ scrollWidth: number; innerWidth: number }>(
        "({ scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth })",
      );
      assert.equal(overflow.innerWidth, 390);
      assert.ok(
        overflow.scrollWidth <= overflow.innerWidth + 1,
        `page overflows: ${JSON.stringify(overflow)}`,
      );
      await screenshot(p, "07-phone-task-list.png");
    } finally {
      await phone.close();
    }

    await page.emulateMedia({ colorScheme: "dark" });
    await go("tasks");
    const colors = await page.evaluate<{ body: string; html: string; fg: string }>(
      `({ body: getComputedStyle(document.body).backgroundColor,
          html: getComputedStyle(document.documentElement).backgroundColor,
          fg: getComputedStyle(document.body).color })`,
    );
    // body is transparent unless it sets its own; then the root's background is what shows.
    const bg = luminance(colors.body) ?? luminance(colors.html);
    assert.ok(bg !== undefined && bg < 0.05, `background is not dark: ${JSON.stringify(colors)}`);
    const fg = luminance(colors.fg);
    assert.ok(fg !== undefined && fg > 0.5, `text is not light on dark: ${JSON.stringify(colors)}`);
    await screenshot(page, "08-dark-task-list.png");
    await page.emulateMedia({ colorScheme: "light" });
    await assertSamePage();
  });

  // Known bug (kept failing on purpose): web/src/app.tsx falls back to live.start(0n) when the first
  // ListTasks fails, so one transient error makes the tab replay the whole event log, and the
  // header chart (header-stats.tsx) counts every replayed end of a task as finished "now".
  it("9. a transient failure of the first listing does not make the tab replay the whole event log", {
    skip,
  }, async () => {
    const session = await page.evaluate<string>(`sessionStorage.getItem("spage.session")`);
    const now = BigInt(String((await call("ListTasks", { limit: 1 })).sequence ?? "0"));
    assert.ok(now > 0n);
    const tab = await page.context().newPage();
    try {
      tab.setDefaultTimeout(15_000);
      await tab.addInitScript(`sessionStorage.setItem("spage.session", ${JSON.stringify(session)})`);
      // The listing app.tsx reads the event log position from (ListTasks {limit: 1}) fails once, as
      // a call through a flaky network or to a restarting gateway does; every other call goes through.
      let failed = 0;
      await tab.route("**/spage.api.SpageAPI/ListTasks", (route) => {
        const body = JSON.parse(route.request().postData() || "{}") as Record<string, unknown>;
        const positionRead = Object.keys(body).length === 1 && body.limit === 1;
        return positionRead && failed++ === 0 ? route.abort("connectionreset") : route.continue();
      });
      const watchedFrom: bigint[] = [];
      tab.on("request", (req) => {
        if (!req.url().endsWith("/spage.api.SpageAPI/WatchEvents")) return;
        // Connect streaming: a 5-byte envelope header, then the JSON request.
        const body = JSON.parse(req.postDataBuffer()?.subarray(5).toString() || "{}") as {
          afterSequence?: string;
        };
        watchedFrom.push(BigInt(body.afterSequence ?? "0"));
      });
      await tab.goto(`${base}/#/tasks`);
      await tab.locator('.conn[data-state="live"]').waitFor();
      await tab.locator("tr[data-task-id]").first().waitFor();
      await screenshot(tab, "09-first-listing-failed.png");
      const bars = await tab.evaluate<string[]>(
        `[...document.querySelectorAll(".chart rect.bar")].map((r) => r.getAttribute("height"))`,
      );
      assert.ok(failed >= 2, "the position-reading listing failed once and was tried again");
      assert.ok(watchedFrom.length > 0, "no WatchEvents call");
      const from = watchedFrom[0] ?? 0n;
      assert.ok(
        from >= now,
        `the tab watches events from sequence ${from}, not ${now}: it replays the whole event ` +
          `log, and the chart counts every replayed end of a task as finished now (bar heights: ${bars.join(", ")})`,
      );
    } finally {
      await tab.close();
    }
  });
});
