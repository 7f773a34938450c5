/**
 * Dependencies, workflows and batch operations in the dashboard, in a real browser (Debian's
 * Chromium through playwright-core), against a real in-process gateway (--auth on) and scripted
 * daemons on the real daemon channel (helpers/test-daemon.ts).
 *
 * One page, signed in once and never reloaded:
 * - a task in the middle of a 3-task chain shows its dependency and its dependent as links with
 *   their states, and the workflow's graph; the waiting states are filterable and shown as
 *   "waiting"; when the dependency completes, the graph and the links follow live (WAITING to
 *   PENDING or ASSIGNED); the graph's nodes are links that work from the keyboard;
 * - a workflow id filters the list; rows are selected (one by one, and "select all on page"),
 *   canceled after a confirmation naming their count, or kept with Escape;
 * - "Cancel all matching" counts first (a dry run), shows the count, and cancels only on confirm;
 * - Retry, and "Retry failed hosts only" for a run whose host failed (reported over
 *   SpageExecution.StreamProgress, as the run's core does), each opening the new, linked task;
 * - 1,000 stored PENDING tasks are canceled by a label filter through the dashboard's connect-web
 *   client, in one call of limit 1,000 after its dry run, and every one of them ends CANCELED.
 *
 * Screenshots go to artifacts/screenshots/. Without /usr/bin/chromium every test is reported as
 * skipped, with the reason.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Browser, Page } from "playwright-core";
import { type ProgressUpdateSchema, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { buildDashboard, dashboardIsStale } from "../../web/build-if-stale.js";
import { chromiumSkip, eventually, launchChromium, screenshot } from "./helpers/browser.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { DaemonPool, fastTimings, type TestDaemon, waitForTask } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const skip = chromiumSkip;
const API = "spage.api.SpageAPI";

let server: TestServer | undefined;
let clients: GatewayClients;
let daemons: DaemonPool;
let launching: Promise<Browser> | undefined;
let page: Page;
const pageErrors: string[] = [];

/** A daemon with the admin key that takes tasks labelled `pool`. */
function daemon(id: string, pool: string): Promise<TestDaemon> {
  assert.ok(server);
  return daemons.connect({
    daemonId: id,
    capacity: 1,
    labels: `pool=${pool}`,
    heartbeatMs: 200,
    token: server.adminKey,
  });
}

/** Runs an assigned task through accepted and started, then ends it as `end` says. */
async function run(
  d: TestDaemon,
  taskId: string,
  end: "completed" | "failed" | "open" = "completed",
): Promise<void> {
  await d.waitFor("task.assigned", (ev) => ev.data.task_id === taskId, 10_000);
  await d.ack("task.accepted", { task_id: taskId });
  await d.ack("task.started", { task_id: taskId, pid: "1" });
  if (end === "completed") await d.ack("task.completed", { task_id: taskId, exit_code: "0" });
  if (end === "failed")
    await d.ack("task.failed", { task_id: taskId, exit_code: "2", error: "exit status 2" });
}

/** Reports per-host step results of a run over SpageExecution.StreamProgress, as its core does. */
async function reportSteps(updates: MessageInitShape<typeof ProgressUpdateSchema>[]): Promise<void> {
  async function* send() {
    yield* updates;
  }
  const acks: string[] = [];
  for await (const ack of clients.exec.streamProgress(send(), { timeoutMs: 10_000 })) {
    acks.push(ack.metadata.ack ?? "");
  }
  assert.deepEqual(
    acks,
    updates.map(() => "true"),
    "every update acknowledged",
  );
}

/** The task status badge of the detail view has a text matching `text` (e.g. /^failed$/). */
function detailStatus(text: RegExp): Promise<void> {
  return page.locator("[data-testid=task-status]", { hasText: text }).waitFor();
}

/** The graph node of `id`, as `status text` with its data-status, e.g. "WAITING waiting". */
async function graphNode(id: string): Promise<string> {
  const node = page.locator(`[data-testid=graph-node][data-task-id="${id}"]`);
  const [state, text] = await Promise.all([
    node.getAttribute("data-status"),
    node.locator(".node-status").textContent(),
  ]);
  return `${state} ${text}`;
}

/** The id and badge text of each link in a relation list (depends-on, dependents, retry-of, retries). */
function links(testId: string): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll("[data-testid=${testId}] li")].map((li) =>
      li.getAttribute("data-task-id") + " " + li.querySelector(".badge").textContent)`,
  );
}

/** Task ids of the list's rows, in order. */
function rowIds(): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll("tr[data-task-id]")].map((r) => r.getAttribute("data-task-id"))`,
  );
}

/** The list says it has `n` tasks (as the dashboard writes numbers). */
function listTotal(n: number): Promise<void> {
  return page
    .locator("section[aria-labelledby=tasks-title] > p.muted", {
      hasText: `${n.toLocaleString("en-US")} tasks`,
    })
    .waitFor();
}

/** Opens the task list through the header, as a user clicks it. */
async function openList(): Promise<void> {
  await page.locator('header nav a[href="#/tasks"]').click();
  await page.locator("#tasks-title").waitFor();
}

/** Opens a task from the list by its id link. */
async function openFromList(id: string): Promise<void> {
  await openList();
  await page.locator(`tr[data-task-id="${id}"] a[href="#/tasks/${id}"]`).click();
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

async function total(req: {
  workflowId?: string;
  label?: string;
  type?: string;
  status?: string;
}): Promise<number> {
  return (await clients.api.listTasks({ ...req, limit: 1 })).total;
}

describe("workflows and batch operations in the dashboard (Chromium)", { timeout: 170_000 }, () => {
  before(
    async () => {
      if (skip) return;
      if (dashboardIsStale()) await buildDashboard();
      server = await startTestServer(["--auth", "on", ...fastTimings]);
      clients = gatewayClients(server.url, server.adminKey);
      daemons = new DaemonPool(server.url);
      launching = launchChromium();
      const browser = await launching;
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
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
    { timeout: 60_000 },
  );

  after(async () => {
    // The browser first: its streams and connections must be gone before the leak check.
    await (await launching?.catch(() => undefined))?.close().catch(() => {});
    await daemons?.closeAll();
    clients?.close();
    await server?.close(5000);
  });

  it("a chained task shows its dependency, its dependent and the workflow graph, which follow live", {
    skip,
  }, async () => {
    await clients.api.submitTasks({
      workflowId: "wf-chain",
      tasks: [
        { taskId: "chain-a", type: "deploy", payload: { target_labels: "pool=chain" } },
        {
          taskId: "chain-b",
          type: "deploy",
          dependsOn: ["chain-a"],
          payload: { target_labels: "pool=chain" },
        },
        {
          taskId: "chain-c",
          type: "deploy",
          dependsOn: ["chain-b"],
          payload: { target_labels: "pool=chain" },
        },
      ],
    });

    // WAITING is a state of its own in the list's filter and badges.
    await openList();
    await page.getByLabel("Status", { exact: true }).selectOption({ label: "waiting" });
    await listTotal(2);
    await eventually(async () => assert.deepEqual(await rowIds(), ["chain-c", "chain-b"]));
    assert.deepEqual(await page.locator("tr[data-task-id] .badge").allTextContents(), ["waiting", "waiting"]);
    await page.getByLabel("Status", { exact: true }).selectOption({ label: "any" });

    await openFromList("chain-b");
    await detailStatus(/^waiting$/);
    await eventually(async () => assert.deepEqual(await links("depends-on"), ["chain-a pending"]));
    assert.deepEqual(await links("dependents"), ["chain-c waiting"]);
    assert.equal(
      await page.locator("[data-testid=relations] [data-testid=workflow-link]").textContent(),
      "wf-chain",
    );
    await eventually(async () => {
      assert.equal(await page.locator("[data-testid=graph-node]").count(), 3);
      assert.equal(await graphNode("chain-a"), "PENDING pending");
      assert.equal(await graphNode("chain-b"), "WAITING waiting · this task");
      assert.equal(await graphNode("chain-c"), "WAITING waiting");
    });
    const edges = await page
      .locator("[data-edge]")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-edge")));
    assert.deepEqual(edges.sort(), ["chain-a>chain-b", "chain-b>chain-c"]);
    // By depth: one column per layer, left to right.
    const xs = await page.evaluate<number[]>(
      `["chain-a", "chain-b", "chain-c"].map((id) =>
        document.querySelector('[data-testid=graph-node][data-task-id="' + id + '"]').getBoundingClientRect().x)`,
    );
    assert.ok(
      xs[0] !== undefined && xs[1] !== undefined && xs[2] !== undefined && xs[0] < xs[1] && xs[1] < xs[2],
      `layers: ${xs}`,
    );
    assert.equal(
      await page.locator('[data-testid=graph-node][aria-current="page"]').getAttribute("data-task-id"),
      "chain-b",
    );
    assert.match(
      (await page.locator("[data-testid=graph-summary]").textContent()) ?? "",
      /^3 tasks in 3 layers: 2 waiting, 1 pending$/,
    );
    await screenshot(page, "workflow-waiting.png");

    // The dependency runs and completes while the page stays open.
    const d = await daemon("chain-daemon", "chain");
    await run(d, "chain-a", "open");
    await eventually(async () => assert.equal(await graphNode("chain-a"), "RUNNING running"));
    assert.equal(
      await graphNode("chain-b"),
      "WAITING waiting · this task",
      "still waiting while chain-a runs",
    );
    await d.ack("task.completed", { task_id: "chain-a", exit_code: "0" });
    await eventually(async () => {
      assert.equal(await graphNode("chain-a"), "COMPLETED completed");
      assert.match(await graphNode("chain-b"), /^(PENDING pending|ASSIGNED assigned) · this task$/);
    });
    await detailStatus(/^(pending|assigned)$/);
    assert.equal(await graphNode("chain-c"), "WAITING waiting");
    await eventually(async () => assert.deepEqual(await links("depends-on"), ["chain-a completed"]));
    assert.equal(await page.locator('[data-edge="chain-a>chain-b"]').getAttribute("class"), "edge done");
    await page.locator('ol.timeline li[data-type="task.status"]', { hasText: "waiting → pending" }).waitFor();
    await screenshot(page, "workflow-live.png");

    // The graph's nodes are links in the tab order, with a visible focus.
    await page.locator('[data-testid=graph-node][data-task-id="chain-b"]').focus();
    await page.keyboard.press("Tab");
    assert.equal(
      await page.evaluate<string | null>(`document.activeElement.getAttribute("data-task-id")`),
      "chain-c",
    );
    const focusedStroke = await page.evaluate<string>(
      `getComputedStyle(document.activeElement.querySelector("rect")).strokeWidth`,
    );
    assert.equal(focusedStroke, "4px", "the focused node is outlined");
    await page.keyboard.press("Enter");
    await page.locator("#task-title", { hasText: "chain-c" }).waitFor();
    await eventually(async () =>
      assert.match((await links("depends-on")).join(), /^chain-b (pending|assigned)$/),
    );
    assert.deepEqual(await links("dependents"), [], "chain-c has no dependents");

    await run(d, "chain-b");
    await run(d, "chain-c");
    await detailStatus(/^completed$/);
    await eventually(async () => {
      for (const id of ["chain-a", "chain-b"]) assert.equal(await graphNode(id), "COMPLETED completed");
      assert.equal(await graphNode("chain-c"), "COMPLETED completed · this task");
    });
    d.close();
    await assertSamePage();
  });

  it("a workflow id filters the list; selected rows are canceled after confirming their count", {
    skip,
  }, async () => {
    await clients.api.submitTasks({
      workflowId: "wf-select",
      tasks: ["sel-1", "sel-2", "sel-3", "sel-4"].map((taskId) => ({
        taskId,
        type: "select-me",
        payload: { target_labels: "pool=none" },
      })),
    });
    await openList();
    await page.locator('tr[data-task-id="sel-1"] [data-testid=workflow-link]').click();
    await page.waitForFunction(`location.hash === "#/tasks?workflow=wf-select"`);
    await listTotal(4);
    assert.equal(await page.getByLabel("Workflow", { exact: true }).inputValue(), "wf-select");
    await eventually(async () => assert.deepEqual(await rowIds(), ["sel-4", "sel-3", "sel-2", "sel-1"]));

    const cancelSelected = page.getByRole("button", { name: /^Cancel selected/ });
    assert.equal(await cancelSelected.isDisabled(), true, "nothing selected yet");
    await page.getByLabel("Select task sel-1").check();
    await page.getByLabel("Select task sel-2").check();
    assert.equal(await cancelSelected.textContent(), "Cancel selected (2)");
    await cancelSelected.click();
    const confirm = page.getByRole("alertdialog", { name: "Confirm cancel" });
    await confirm.waitFor();
    assert.equal(await confirm.locator(":scope > span").textContent(), "Cancel 2 tasks selected?");
    assert.equal(
      await total({ workflowId: "wf-select", status: "PENDING" }),
      4,
      "nothing canceled before confirming",
    );
    await confirm.getByRole("button", { name: "Yes, cancel 2 tasks" }).click();
    await page.locator("[data-testid=batch-result]", { hasText: "Canceled 2 tasks." }).waitFor();
    await page.locator('tr[data-task-id="sel-1"][data-status="CANCELED"]').waitFor();
    await page.locator('tr[data-task-id="sel-2"][data-status="CANCELED"]').waitFor();
    assert.equal(
      await page.getByLabel("Select task sel-1").isDisabled(),
      true,
      "an ended task is not selectable",
    );
    assert.equal(await total({ workflowId: "wf-select", status: "CANCELED" }), 2);
    assert.equal(await total({ workflowId: "wf-select", status: "PENDING" }), 2);

    // "Select all on page" takes the rest; Escape keeps them, and the focus goes back to the button.
    await page.getByLabel("Select all on page").check();
    assert.equal(await cancelSelected.textContent(), "Cancel selected (2)");
    assert.equal(await page.getByLabel("Select task sel-3").isChecked(), true);
    await cancelSelected.click();
    await confirm.waitFor();
    assert.equal(
      await page.evaluate<string | null>("document.activeElement.textContent"),
      "Keep them",
      "the safe choice has the focus",
    );
    await page.keyboard.press("Escape");
    await confirm.waitFor({ state: "detached" });
    assert.equal(
      await page.evaluate<string | null>("document.activeElement.textContent"),
      "Cancel selected (2)",
    );
    assert.equal(await total({ workflowId: "wf-select", status: "PENDING" }), 2, "Escape canceled nothing");
    await screenshot(page, "batch-selected.png");
    await assertSamePage();
  });

  it("cancel all matching counts with a dry run, confirms the count, then cancels only those", {
    skip,
  }, async () => {
    await clients.api.submitTasks({
      tasks: [
        ...Array.from({ length: 5 }, (_, i) => ({
          taskId: `match-${i}`,
          type: "match-me",
          payload: { target_labels: "pool=none" },
        })),
        ...Array.from({ length: 2 }, (_, i) => ({
          taskId: `spare-${i}`,
          type: "spare-me",
          payload: { target_labels: "pool=none" },
        })),
      ],
    });
    const calls: Record<string, unknown>[] = [];
    const onRequest = (req: { url(): string; postData(): string | null }) => {
      if (req.url().endsWith(`/${API}/CancelTasks`)) calls.push(JSON.parse(req.postData() ?? "{}"));
    };
    page.on("request", onRequest);
    try {
      await openList();
      assert.equal(
        await page.getByLabel("Workflow", { exact: true }).inputValue(),
        "",
        "the plain list has no workflow filter",
      );
      await page.getByLabel("Type", { exact: true }).fill("match-me");
      await listTotal(5);
      await page.getByRole("button", { name: /^Cancel all matching/ }).click();
      const confirm = page.getByRole("alertdialog", { name: "Confirm cancel" });
      await confirm.waitFor();
      assert.equal(await confirm.locator("[data-testid=cancel-count]").textContent(), "5 tasks");
      assert.match((await confirm.textContent()) ?? "", /match type match-me and have not ended/);
      assert.deepEqual(calls, [{ filter: { type: "match-me" }, limit: 1000, dryRun: true }]);
      assert.equal(await total({ type: "match-me", status: "PENDING" }), 5, "the dry run changed nothing");
      await confirm.getByRole("button", { name: "Yes, cancel 5 tasks" }).click();
      await page.locator("[data-testid=batch-result]", { hasText: "Canceled 5 tasks." }).waitFor();
      assert.deepEqual(calls.slice(1), [
        { filter: { type: "match-me" }, limit: 5, reason: "canceled from the dashboard" },
      ]);
      assert.equal(await total({ type: "match-me", status: "CANCELED" }), 5);
      assert.equal(await total({ type: "spare-me", status: "PENDING" }), 2, "other tasks were left alone");
      await eventually(async () => {
        const states = await page
          .locator("tr[data-task-id]")
          .evaluateAll((rs) => rs.map((r) => r.getAttribute("data-status")));
        assert.deepEqual(states, Array(5).fill("CANCELED"));
      });

      // Nothing left to match: said so, and no dialog.
      await page.getByRole("button", { name: /^Cancel all matching/ }).click();
      await page
        .locator("[data-testid=batch-result]", { hasText: "No task matching the filter can be canceled" })
        .waitFor();
      assert.equal(await confirm.count(), 0);
      await page.getByLabel("Type", { exact: true }).fill("");
    } finally {
      page.off("request", onRequest);
    }
    await assertSamePage();
  });

  it("retries a task on its failed hosts only, and a whole task, each opening the new task", {
    skip,
  }, async () => {
    const d = await daemon("retry-daemon", "retry");
    await clients.api.submitTask({
      taskId: "rt-site",
      type: "playbook",
      payload: { playbook: "site.yml", target_labels: "pool=retry" },
    });
    await run(d, "rt-site", "open");
    const step = (host: string, status: string, progress: number, error = "") => ({
      taskId: "rt-site",
      progress,
      message: `ping on ${host}: ${status}`,
      metadata: { task: "ping", host, level: "0", status, ...(error ? { error } : {}) },
    });
    await reportSteps([
      step("web1", "running", 0),
      step("web1", "completed", 100),
      step("web2", "running", 0),
      step("web2", "failed", -1, "host unreachable"),
    ]);
    await d.ack("task.failed", { task_id: "rt-site", exit_code: "2", error: "exit status 2" });
    const failed = await waitForTask(clients.api, "rt-site", TaskStatus.FAILED);
    assert.deepEqual(
      failed.hosts.map((h) => `${h.host} failed=${h.failed}`),
      ["web1 failed=0", "web2 failed=1"],
    );

    await openFromList("rt-site");
    await detailStatus(/^failed$/);
    await page.locator('tr[data-host="web2"].host-failed').waitFor();
    assert.equal(await page.locator("#failed-hosts").textContent(), "Failed host: web2");
    assert.equal(
      await page.getByRole("button", { name: "Retry failed hosts only" }).getAttribute("aria-describedby"),
      "failed-hosts",
    );
    await page.getByRole("button", { name: "Retry failed hosts only" }).click();
    await page.waitForFunction(`location.hash.startsWith("#/tasks/") && location.hash !== "#/tasks/rt-site"`);
    const hostsRetry = decodeURIComponent(
      (await page.evaluate<string>("location.hash")).slice("#/tasks/".length),
    );
    await page.locator("#task-title", { hasText: hostsRetry }).waitFor();
    assert.equal(await page.locator("[data-testid=limit-hosts]").textContent(), "web2");
    await eventually(async () => assert.deepEqual(await links("retry-of"), ["rt-site failed"]));
    const stored = (await clients.api.getTaskStatus({ taskId: hostsRetry })).task;
    assert.equal(stored?.retryOf, "rt-site");
    assert.deepEqual(stored?.limitHosts, ["web2"]);
    const assigned = await d.waitFor("task.assigned", (ev) => ev.data.task_id === hostsRetry, 10_000);
    assert.equal(assigned.data.limit, "web2", "the daemon runs it on web2 only");
    await screenshot(page, "retry-failed-hosts.png");

    // The original links to its retry.
    await page.locator('[data-testid=retry-of] a[href="#/tasks/rt-site"]').click();
    await page.locator("#task-title", { hasText: "rt-site" }).waitFor();
    await eventually(async () =>
      assert.match((await links("retries")).join(), new RegExp(`^${hostsRetry} (assigned|running|pending)$`)),
    );

    // A run with no failed host is offered the whole retry only.
    await run(d, hostsRetry);
    await page.locator(`[data-testid=retries] a[href="#/tasks/${encodeURIComponent(hostsRetry)}"]`).click();
    await page.locator("#task-title", { hasText: hostsRetry }).waitFor();
    await detailStatus(/^completed$/);
    await page.getByRole("button", { name: "Retry", exact: true }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Retry failed hosts only" }).count(), 0);
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page.waitForFunction(
      `location.hash.startsWith("#/tasks/") && location.hash !== ${JSON.stringify(`#/tasks/${encodeURIComponent(hostsRetry)}`)}`,
    );
    const wholeRetry = decodeURIComponent(
      (await page.evaluate<string>("location.hash")).slice("#/tasks/".length),
    );
    await page.locator("#task-title", { hasText: wholeRetry }).waitFor();
    await eventually(async () => assert.deepEqual(await links("retry-of"), [`${hostsRetry} completed`]));
    assert.equal(
      await page.locator("[data-testid=limit-hosts]").count(),
      0,
      "a whole retry has no host limit",
    );
    const whole = (await clients.api.getTaskStatus({ taskId: wholeRetry })).task;
    assert.equal(whole?.retryOf, hostsRetry);
    assert.deepEqual(whole?.limitHosts, []);
    await run(d, wholeRetry);
    await detailStatus(/^completed$/);
    d.close();
    await assertSamePage();
  });

  it("cancels 1,000 stored PENDING tasks by a label filter over connect-web, in one call of limit 1,000", {
    skip,
  }, async () => {
    const submitted = await clients.api.submitTasks({
      tasks: Array.from({ length: 1000 }, (_, i) => ({
        taskId: `r1-${String(i).padStart(4, "0")}`,
        type: "rollout",
        metadata: { rollout: "r1" },
        payload: { target_labels: "pool=none" },
      })),
    });
    assert.equal(submitted.taskIds.length, 1000);
    assert.equal(await total({ label: "rollout=r1", status: "PENDING" }), 1000);

    const calls: {
      body: Record<string, unknown>;
      protocol: string | undefined;
      contentType: string | undefined;
    }[] = [];
    const answers: Record<string, unknown>[] = [];
    const onRequest = (req: {
      url(): string;
      postData(): string | null;
      headers(): Record<string, string>;
    }) => {
      if (!req.url().endsWith(`/${API}/CancelTasks`)) return;
      const h = req.headers();
      calls.push({
        body: JSON.parse(req.postData() ?? "{}"),
        protocol: h["connect-protocol-version"],
        contentType: h["content-type"],
      });
    };
    const onResponse = async (res: { url(): string; json(): Promise<unknown> }) => {
      if (res.url().endsWith(`/${API}/CancelTasks`))
        answers.push((await res.json()) as Record<string, unknown>);
    };
    page.on("request", onRequest);
    page.on("response", onResponse);
    try {
      await openList();
      await page.getByLabel("Label", { exact: true }).fill("rollout=r1");
      await listTotal(1000);
      await page.getByRole("button", { name: /^Cancel all matching/ }).click();
      const confirm = page.getByRole("alertdialog", { name: "Confirm cancel" });
      await confirm.waitFor();
      assert.equal(await confirm.locator("[data-testid=cancel-count]").textContent(), "1,000 tasks");
      await confirm.getByRole("button", { name: "Yes, cancel 1,000 tasks" }).click();
      await page
        .locator("[data-testid=batch-result]", { hasText: "Canceled 1,000 tasks." })
        .waitFor({ timeout: 30_000 });
      await eventually(() => assert.equal(answers.length, 2));
    } finally {
      page.off("request", onRequest);
      page.off("response", onResponse);
    }
    // The Connect protocol with JSON, from the page's own client: the dry run, then one call.
    assert.deepEqual(
      calls.map((c) => [c.protocol, c.contentType]),
      [
        ["1", "application/json"],
        ["1", "application/json"],
      ],
    );
    assert.deepEqual(
      calls.map((c) => c.body),
      [
        { filter: { label: "rollout=r1" }, limit: 1000, dryRun: true },
        { filter: { label: "rollout=r1" }, limit: 1000, reason: "canceled from the dashboard" },
      ],
    );
    const [dry, real] = answers;
    assert.deepEqual([dry?.matched, dry?.canceled, dry?.dryRun, dry?.remaining ?? 0], [1000, 1000, true, 0]);
    assert.deepEqual([real?.matched, real?.canceled, real?.remaining ?? 0], [1000, 1000, 0]);
    assert.equal(((real?.results ?? []) as unknown[]).length, 1000);

    assert.equal(await total({ label: "rollout=r1", status: "CANCELED" }), 1000);
    assert.equal(await total({ label: "rollout=r1", status: "PENDING" }), 0);
    assert.equal(await total({ label: "rollout=r1" }), 1000);
    // The page follows: the rows shown end canceled live.
    await eventually(async () => {
      const states = await page
        .locator("tr[data-task-id]")
        .evaluateAll((rs) => rs.map((r) => r.getAttribute("data-status")));
      assert.equal(states.length, 50);
      assert.deepEqual(new Set(states), new Set(["CANCELED"]));
    }, 15_000);
    await screenshot(page, "batch-1000.png");
    await assertSamePage();
  });
});
