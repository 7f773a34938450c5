/**
 * Plays in the dashboard, in a real browser (Debian's Chromium through playwright-core), against a
 * real in-process gateway (--auth on) and a simulated Spage core of today (helpers/play-core.ts:
 * grpc-js with upstream's own proto) that reports plays with the admin key.
 *
 * One page, signed in once and never reloaded: the list marks a play; its detail page, opened
 * while the play runs, shows each step with its status text, the failed step's error and output
 * behind a disclosure opened with the keyboard, follows a step from running to completed as its
 * updates arrive, keeps step updates out of the timeline, and shows the play's end. At phone width
 * (a second tab of the same session) that page keeps the error column and does not overflow. A
 * second play, run from start to end while its page is opened, ends completed with every step. The
 * detail page of the first goes to artifacts/screenshots/play-detail.png.
 *
 * Without /usr/bin/chromium every test is reported as skipped, with the reason.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { buildDashboard, dashboardIsStale } from "../../web/build-if-stale.js";
import { chromiumSkip, eventually, launchChromium, screenshot } from "./helpers/browser.js";
import { type CoreStream, now, PlayCore, runPlay, type StepPlan, stepUpdates } from "./helpers/play-core.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const skip = chromiumSkip;

const failingPlan: readonly StepPlan[] = [
  { name: "Gathering Facts", outcome: "ok" },
  { name: "install nginx", outcome: "failed", error: "No package matching 'nginx'" },
  { name: "configure", outcome: "skipped" },
  { name: "ping", outcome: "ok", output: "pong" },
];

const okPlan: readonly StepPlan[] = [
  { name: "Gathering Facts", outcome: "ok" },
  { name: "copy files", outcome: "ok" },
  { name: "restart", outcome: "ok" },
];

let server: TestServer | undefined;
let launching: Promise<Browser> | undefined;
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];
const cores: PlayCore[] = [];
const streams: CoreStream[] = [];

/** A core of today that reports with the admin key. */
function core(): PlayCore {
  assert.ok(server);
  const c = new PlayCore(`127.0.0.1:${server.port}`, { authorization: `Bearer ${server.adminKey}` });
  cores.push(c);
  return c;
}

/** The step table's rows as `number name status`, in order. */
function stepRows(): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll("[data-testid=steps] tr[data-step]")].map((r) =>
      [r.getAttribute("data-step"), r.cells[1].textContent, r.querySelector("[data-testid=step-status]").textContent].join(" "))`,
  );
}

/** The status badge of step `n` has this text (e.g. "running"). */
function stepStatus(n: number, text: string): Promise<void> {
  return page
    .locator(`[data-testid=steps] tr[data-step="${n}"] [data-testid=step-status]`, {
      hasText: new RegExp(`^${text}$`),
    })
    .waitFor();
}

/** The task status badge of the detail view has this text (e.g. "failed"). */
function detailStatus(text: string): Promise<void> {
  return page.locator("[data-testid=task-status]", { hasText: new RegExp(`^${text}$`) }).waitFor();
}

/** Opens a task's detail page from the task list, as a user clicks its row. */
async function openFromList(id: string): Promise<void> {
  await page.locator('header nav a[href="#/tasks"]').click();
  const row = page.locator(`tr[data-task-id="${id}"]`);
  await row.waitFor();
  assert.equal(await row.locator(".chip").textContent(), "play", "the list marks a play");
  await row.locator("a").click();
  await page.locator("#task-title", { hasText: id }).waitFor();
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

describe("plays in the dashboard (Chromium)", { timeout: 60_000 }, () => {
  before(
    async () => {
      if (skip) return;
      if (dashboardIsStale()) await buildDashboard();
      server = await startTestServer(["--auth", "on"]);
      launching = launchChromium();
      browser = await launching;
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      page.setDefaultTimeout(10_000);
      page.on("pageerror", (err) => pageErrors.push(err.stack ?? err.message));
      await page.goto(`${server.url}/`);
      await page.locator("#api-key").fill(server.adminKey);
      await page.locator('form[aria-label="Sign in"] button[type=submit]').click();
      await page.locator("#tasks-title").waitFor();
      await page.locator('.conn[data-state="live"]').waitFor();
      await page.evaluate("window.__spageNoReload = true");
    },
    { timeout: 30_000 },
  );

  after(async () => {
    // The browser first: its streams and connections must be gone before the leak check.
    await (await launching?.catch(() => undefined))?.close().catch(() => {});
    await Promise.all(streams.map((s) => s.closeSend().catch(() => undefined)));
    for (const c of cores) c.close();
    await server?.close();
  });

  it("a running play's steps follow its updates live; the failed step shows its error", {
    skip,
  }, async () => {
    const id = "play-dashboard-failed";
    const c = core();
    const play = c.playStream();
    streams.push(play);
    await play.send({ playId: id, status: "PLAY_STATUS_PENDING", output: "Play started", timestamp: now() });
    await play.answered(1);
    await openFromList(id);

    // Steps 1 to 3 start and end; step 4 only starts.
    const tasks = c.taskStream();
    streams.push(tasks);
    const updates = failingPlan.map((s, i) => stepUpdates(id, i + 1, s));
    for (const [start, end] of updates.slice(0, 3)) {
      await tasks.send(start);
      await tasks.send(end);
    }
    const [lastStart, lastEnd] = updates[3] ?? [];
    assert.ok(lastStart && lastEnd);
    await tasks.send(lastStart);
    await tasks.answered(7);

    await detailStatus("running");
    await stepStatus(4, "running");
    await eventually(async () =>
      assert.deepEqual(await stepRows(), [
        "1 Gathering Facts completed",
        "2 install nginx failed",
        "3 configure skipped",
        "4 ping running",
      ]),
    );
    const failed = page.locator('[data-testid=steps] tr[data-step="2"]');
    assert.equal(
      await failed.locator("[data-testid=step-error]").textContent(),
      "No package matching 'nginx'",
    );
    assert.equal(
      await page.locator('[data-testid=steps] tr[data-step="1"] [data-testid=step-error]').textContent(),
      "",
    );

    // The end of step 4 reaches the open page: running, then completed, with its run time and output.
    await tasks.send(lastEnd);
    await tasks.answered(8);
    await stepStatus(4, "completed");
    const ping = page.locator('[data-testid=steps] tr[data-step="4"]');
    assert.equal(await ping.locator("td").nth(3).textContent(), "0.29 s", "metrics.duration, in seconds");
    // The output is behind a disclosure that opens from the keyboard.
    const output = ping.locator("[data-testid=step-output]");
    assert.equal(await output.isVisible(), false, "the output starts folded");
    await ping.locator("summary").focus();
    await page.keyboard.press("Enter");
    await output.waitFor({ state: "visible" });
    assert.equal(await output.textContent(), "pong");
    assert.equal(await ping.locator("summary").textContent(), "Show output of step 4");

    // The play's own updates are in the timeline; the step updates are not, one by one.
    assert.equal(await page.locator('ol.timeline li[data-type="task.step"]').count(), 0);
    assert.ok((await page.locator('ol.timeline li[data-type="play.progress"]').count()) >= 1);
    assert.equal(
      await page.locator("[data-testid=output]").count(),
      0,
      "no empty output log for a play: its output is per step",
    );

    await play.send({
      playId: id,
      status: "PLAY_STATUS_FAILED",
      error: "task install nginx failed",
      output: "Play failed",
      timestamp: now(),
    });
    await play.answered(2);
    await detailStatus("failed");
    await page.locator("[data-testid=task-error]", { hasText: "No package matching 'nginx'" }).waitFor();
    await page
      .locator("[data-testid=steps-recap]", { hasText: "4 steps: 2 completed, 1 failed, 1 skipped" })
      .waitFor();
    await page.locator('ol.timeline li[data-type="task.status"]', { hasText: "running → failed" }).waitFor();
    assert.deepEqual(await stepRows(), [
      "1 Gathering Facts completed",
      "2 install nginx failed",
      "3 configure skipped",
      "4 ping completed",
    ]);
    await screenshot(page, "play-detail.png");
    await Promise.all([play.closeSend(), tasks.closeSend()]);
    await assertSamePage();
  });

  it("at phone width the play's page does not overflow and its steps keep the error column", {
    skip,
  }, async () => {
    assert.ok(browser && server);
    const session = await page.evaluate<string>(`sessionStorage.getItem("spage.session")`);
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      const p = await phone.newPage();
      p.setDefaultTimeout(10_000);
      await p.addInitScript(`sessionStorage.setItem("spage.session", ${JSON.stringify(session)})`);
      await p.goto(`${server.url}/#/tasks/play-dashboard-failed`);
      const error = p.locator('[data-testid=steps] tr[data-step="2"] [data-testid=step-error]');
      await error.waitFor();
      assert.equal(await error.textContent(), "No package matching 'nginx'");
      assert.equal(await error.isVisible(), true, "the error column is shown at phone width");
      const overflow = await p.evaluate<{ scrollWidth: number; innerWidth: number }>(
        "({ scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth })",
      );
      assert.ok(
        overflow.scrollWidth <= overflow.innerWidth + 1,
        `page overflows: ${JSON.stringify(overflow)}`,
      );
    } finally {
      await phone.close();
    }
  });

  it("a play run to completion while its page opens ends completed, every step shown", { skip }, async () => {
    const id = "play-dashboard-ok";
    const running = runPlay(core(), id, okPlan, "completed");
    await openFromList(id);
    await running;
    await detailStatus("completed");
    await eventually(async () =>
      assert.deepEqual(await stepRows(), [
        "1 Gathering Facts completed",
        "2 copy files completed",
        "3 restart completed",
      ]),
    );
    // Back in the list, the play's row has ended, with all of its progress.
    await page.locator('header nav a[href="#/tasks"]').click();
    const row = page.locator(`tr[data-task-id="${id}"][data-status="COMPLETED"]`);
    await row.waitFor();
    assert.equal(await row.locator("progress").getAttribute("aria-label"), "100 %");
    await assertSamePage();
  });
});
