/**
 * The dashboard in a real headless Chromium, against a fresh gateway holding 10,000 PENDING tasks:
 *
 * - first view: `/` opened with the session already in sessionStorage, timed in the page from
 *   navigation start until a task row is in the DOM and the connection indicator says live, plus the
 *   next frame (so the figure includes painting it); 5 fresh pages, the first on an empty cache;
 * - live events: 50 SubmitTask/s for 10 s with the task list open. The page's own WatchEvents
 *   response is counted as the dashboard reads it: `window.fetch` is wrapped (init script) and the
 *   application/connect+json envelopes of that response are parsed on their way to connect-web, so
 *   every event sequence the dashboard received is known. It must hold the gateway's whole event
 *   range of the run, and the first page of rows must end up equal to ListTasks' 50 newest.
 *   Long tasks (PerformanceObserver) and submit-to-row delays (a MutationObserver notes when each
 *   row enters the DOM) tell how smoothly the page keeps up.
 *
 * In-page code is passed as strings: tsx may wrap functions in helpers the page does not have.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { chromiumPath, launchChromium } from "../server/test/helpers/browser.js";
import { buildDashboard, dashboardIsStale } from "../web/build-if-stale.js";
import { check, fail, note } from "./checks.js";
import { gatewayDir, root, startGateway } from "./gateway.js";
import { apiClient } from "./protocols.js";
import { p50p99, quantile } from "./stats.js";

/** What the dashboard phase measured, or why it was skipped. */
export interface DashboardResult {
  /** Set when the phase did not run: why. */
  readonly skipped?: string;
  readonly browser: string;
  readonly tasksInStore: number;
  readonly coldMs: number;
  readonly warmMs: readonly number[];
  readonly warmP50Ms: number;
  readonly warmMaxMs: number;
  /** SubmitTask calls made during the event run, and over how many seconds they went out. */
  readonly offered: number;
  readonly offerSeconds: number;
  /** Events in the gateway's log for the run (sequence range), received by the page, missing. */
  readonly eventRange: number;
  readonly received: number;
  readonly missing: number;
  /** Events of the range the page received more than once (after a reconnect). */
  readonly duplicates: number;
  /** WatchEvents calls the page made during the run, on top of the one open at its start. */
  readonly reconnects: number;
  readonly rowsMatch: boolean;
  readonly longTasks: number;
  readonly longTaskMaxMs: number;
  readonly blockingMs: number;
  readonly rowSamples: number;
  /** Submitted tasks whose row never entered the DOM (more than 50 came between two reloads). */
  readonly rowsNeverShown: number;
  readonly rowP50Ms: number;
  readonly rowP99Ms: number;
  /** From the submit's send to its event in the page's WatchEvents response. */
  readonly eventP50Ms: number;
  readonly eventP99Ms: number;
}

const tasksInStore = 10_000;
const seedBatch = 200;
const firstViews = 5;
const firstViewTarget = 1000;
const eventRate = 50;
const eventSeconds = 10;
const pageSize = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ok` every 50 ms until it holds or `ms` pass; returns its last answer. */
async function until(ok: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await ok()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/** The instrumentation every page gets before its own scripts run. */
function initScript(session: string): string {
  return `(() => {
  sessionStorage.setItem("spage.session", ${JSON.stringify(session)});
  const bench = { events: [], streams: [], bad: 0, rows: {}, longTasks: [], firstViewDom: undefined, firstView: undefined };
  window.__bench = bench;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) bench.longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: "longtask", buffered: true });
  } catch {}

  // The dashboard's WatchEvents response, envelope by envelope, on its way to connect-web.
  const realFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.endsWith("/spage.api.SpageAPI/WatchEvents")) return realFetch(input, init);
    // Counted from the call: the gateway sends the response headers with the first event.
    const stream = { called: Date.now(), opened: undefined, status: 0, closed: undefined, end: undefined, failed: undefined };
    bench.streams.push(stream);
    let res;
    try {
      res = await realFetch(input, init);
    } catch (err) {
      stream.failed = String(err);
      throw err;
    }
    stream.opened = Date.now();
    stream.status = res.status;
    if (!res.body) return res;
    const decoder = new TextDecoder();
    let buf = new Uint8Array(0);
    const counter = new TransformStream({
      transform(chunk, out) {
        out.enqueue(chunk);
        const at = Date.now();
        const joined = new Uint8Array(buf.length + chunk.length);
        joined.set(buf);
        joined.set(chunk, buf.length);
        buf = joined;
        let off = 0;
        while (buf.length - off >= 5) {
          const flags = buf[off];
          const len = new DataView(buf.buffer, buf.byteOffset + off + 1, 4).getUint32(0);
          if (buf.length - off - 5 < len) break;
          const body = buf.subarray(off + 5, off + 5 + len);
          off += 5 + len;
          if (flags & 1) { bench.bad++; continue; }
          const text = decoder.decode(body);
          if (flags & 2) { stream.end = text; continue; }
          try {
            const ev = JSON.parse(text);
            bench.events.push({ seq: Number(ev.sequence ?? 0), type: ev.type ?? "", taskId: ev.taskId ?? "", at });
          } catch { bench.bad++; }
        }
        buf = buf.slice(off);
      },
      flush() { stream.closed = Date.now(); },
    });
    return new Response(res.body.pipeThrough(counter), { status: res.status, statusText: res.statusText, headers: res.headers });
  };

  // When each task row first enters the DOM, and the first view: a row and the indicator live,
  // then the frame that paints them.
  const note = () => {
    if (bench.firstViewDom !== undefined) return;
    if (!document.querySelector("tr[data-task-id]") || !document.querySelector('.conn[data-state="live"]')) return;
    bench.firstViewDom = performance.now();
    requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => { bench.firstView = performance.now(); };
      ch.port2.postMessage(0);
    });
  };
  new MutationObserver((records) => {
    const at = Date.now();
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        const rows = n.matches("tr[data-task-id]") ? [n] : n.querySelectorAll("tr[data-task-id]");
        for (const row of rows) {
          const id = row.getAttribute("data-task-id");
          if (!(id in bench.rows)) bench.rows[id] = at;
        }
      }
    }
    note();
  }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"] });
})();`;
}

interface PageEvent {
  seq: number;
  type: string;
  taskId: string;
  at: number;
}

const shownRows = `[...document.querySelectorAll("tr[data-task-id]")].map((r) => r.getAttribute("data-task-id"))`;

/** Opens `/` on a new page of the browser's context and waits for the first view; its ms. */
async function openDashboard(
  newPage: () => Promise<Page>,
  baseUrl: string,
): Promise<{ page: Page; ms: number }> {
  const page = await newPage();
  await page.goto(`${baseUrl}/`, { waitUntil: "commit" });
  await page.waitForFunction("window.__bench && window.__bench.firstView !== undefined", undefined, {
    timeout: 30_000,
  });
  const ms = (await page.evaluate("window.__bench.firstView")) as number;
  if (!(await page.locator("tr[data-task-id]").first().isVisible())) {
    fail("dashboard: the first task row is in the DOM but not visible");
  }
  return { page, ms };
}

/** Runs the dashboard phase on its own gateway (the dashboard must be built before it starts). */
export async function measureDashboard(): Promise<DashboardResult> {
  const skip = (why: string): DashboardResult => {
    note(`dashboard: skipped, ${why}`);
    return { skipped: why } as DashboardResult;
  };
  if (!existsSync(chromiumPath))
    return skip(`${chromiumPath} is missing (install Chromium to run this phase)`);
  if (gatewayDir === root) {
    if (dashboardIsStale()) {
      note("dashboard: building web/dist…");
      await buildDashboard();
    }
  } else if (!existsSync(join(gatewayDir, "web", "dist", "index.html"))) {
    return skip(`the gateway under test (${gatewayDir}) has no dashboard build (web/dist)`);
  }

  const gw = await startGateway();
  const client = apiClient("grpc", gw.baseUrl, gw.token);
  let browser: Browser | undefined;
  try {
    note(`dashboard: storing ${tasksInStore.toLocaleString("en-US")} tasks…`);
    for (let i = 0; i < tasksInStore; i += seedBatch) {
      await Promise.all(
        Array.from({ length: Math.min(seedBatch, tasksInStore - i) }, () =>
          client.api.submitTask({ type: "bench-dashboard-seed" }),
        ),
      );
    }
    const stored = (await client.api.listTasks({ limit: 1 })).total;
    check(stored === tasksInStore, `dashboard: ${stored} tasks stored, want ${tasksInStore}`);

    const token = await client.api.validateToken({ token: gw.token });
    const session = JSON.stringify({
      token: gw.token,
      expiresAt: Math.floor(Date.now() / 1000) + 24 * 3600,
      permissions: Object.keys(token.permissions),
    });

    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(initScript(session));
    const pageErrors: string[] = [];
    const newPage = async () => {
      const page = await context.newPage();
      page.on("pageerror", (err) => pageErrors.push(err.message));
      return page;
    };

    // First view: the first page loads everything from the gateway, the others use the cache.
    note(`dashboard: ${firstViews} first views…`);
    const loads: number[] = [];
    for (let i = 0; i < firstViews; i++) {
      const { page, ms } = await openDashboard(newPage, gw.baseUrl);
      loads.push(ms);
      await page.close();
    }
    const coldMs = loads[0] as number;
    const warmMs = loads.slice(1);
    const warmSorted = Float64Array.from(warmMs).sort();
    const warmP50Ms = quantile(warmSorted, 0.5);
    const warmMaxMs = Math.max(...warmMs);
    check(
      warmP50Ms < firstViewTarget,
      `dashboard: warm first view p50 ${Math.round(warmP50Ms)} ms is over the ${firstViewTarget} ms target`,
    );

    // Live events: the task list open, 50 submits/s at a steady rate.
    const { page } = await openDashboard(newPage, gw.baseUrl);
    const loaded = await until(
      async () => ((await page.evaluate(shownRows)) as string[]).length === pageSize,
      10_000,
    );
    if (!loaded) throw new Error(`the task list did not show ${pageSize} rows within 10 s`);
    await sleep(1000);
    const s0 = (await client.api.listTasks({ limit: 1 })).sequence;
    const streams0 = (await page.evaluate("window.__bench.streams.length")) as number;
    const openAtStart = (await page.evaluate(
      "window.__bench.streams.filter((s) => !s.failed && s.closed === undefined && s.end === undefined).length",
    )) as number;
    if (openAtStart !== 1)
      note(`dashboard: ${openAtStart} WatchEvents calls open in the page before the run, not 1`);
    const pageStart = (await page.evaluate("performance.now()")) as number;
    note(`dashboard: ${eventRate} submits/s for ${eventSeconds} s with the task list open…`);
    const total = eventRate * eventSeconds;
    const sent = new Map<string, number>();
    const submits: Promise<unknown>[] = [];
    let failedSubmits = 0;
    const started = performance.now();
    let n = 0;
    while (n < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * eventRate) + 1);
      for (; n < due; n++) {
        const taskId = `dash-${process.pid}-${n}`;
        sent.set(taskId, Date.now());
        submits.push(
          client.api.submitTask({ taskId, type: "bench-dashboard" }).catch(() => {
            failedSubmits++;
          }),
        );
      }
      await sleep(2);
    }
    const offerSeconds = (performance.now() - started) / 1000;
    await Promise.all(submits);
    check(failedSubmits === 0, `dashboard: ${failedSubmits} of ${total} submits failed`);
    const s1 = (await client.api.listTasks({ limit: 1 })).sequence;
    const eventRange = Number(s1 - s0);

    // Wait for the page to receive the end of the range and to show the newest tasks.
    await until(async () => {
      const last = (await page.evaluate(
        "window.__bench.events.reduce((m, e) => Math.max(m, e.seq), 0)",
      )) as number;
      return last >= Number(s1);
    }, 10_000);
    let newest: string[] = [];
    let shown: string[] = [];
    const rowsMatch = await until(async () => {
      newest = (await client.api.listTasks({ limit: pageSize })).tasks.map((t) => t.id);
      shown = (await page.evaluate(shownRows)) as string[];
      return newest.length === shown.length && newest.every((id, i) => shown[i] === id);
    }, 5000);
    const pageEnd = (await page.evaluate("performance.now()")) as number;
    if (!rowsMatch) {
      const absent = newest.filter((id) => !shown.includes(id)).length;
      check(
        false,
        `dashboard: the first page shows ${shown.length} rows, not the ${pageSize} newest tasks (${absent} of them absent; first shown ${shown[0]}, newest ${newest[0]})`,
      );
    }

    const bench = (await page.evaluate(
      "({ events: window.__bench.events, streams: window.__bench.streams, bad: window.__bench.bad, rows: window.__bench.rows, longTasks: window.__bench.longTasks })",
    )) as {
      events: PageEvent[];
      streams: {
        called: number;
        opened?: number;
        status: number;
        closed?: number;
        end?: string;
        failed?: string;
      }[];
      bad: number;
      rows: Record<string, number>;
      longTasks: { start: number; duration: number }[];
    };
    const inRange = bench.events.filter((e) => e.seq > Number(s0) && e.seq <= Number(s1));
    const distinct = new Set(inRange.map((e) => e.seq));
    const received = distinct.size;
    const missing = eventRange - received;
    const duplicates = inRange.length - distinct.size;
    const gotTasks = new Set(inRange.filter((e) => e.type === "task.submitted").map((e) => e.taskId));
    const lostSubmits = [...sent.keys()].filter((id) => !gotTasks.has(id)).length;
    check(
      missing === 0 && lostSubmits === 0,
      `dashboard: the page received ${received} of the ${eventRange} events of the run (${missing} missing; ${lostSubmits} of ${total} task.submitted absent)`,
    );
    if (eventRange !== total) note(`dashboard: the run stored ${eventRange} events for ${total} submits`);
    if (bench.bad > 0) fail(`dashboard: ${bench.bad} WatchEvents envelopes could not be read`);
    const reconnects = bench.streams.length - streams0;
    if (reconnects > 0) {
      const ends = bench.streams.map((s) => s.failed ?? s.end ?? "").filter((x) => x !== "");
      note(`dashboard: the page reopened WatchEvents ${reconnects} time(s); stream ends: ${ends.join("; ")}`);
    }
    if (pageErrors.length > 0) fail(`dashboard: page errors: ${pageErrors.slice(0, 3).join("; ")}`);

    const long = bench.longTasks.filter((t) => t.start >= pageStart && t.start <= pageEnd);
    const delays: number[] = [];
    for (const [id, at] of sent) {
      const seen = bench.rows[id];
      if (seen !== undefined) delays.push(seen - at);
    }
    const { p50: rowP50Ms, p99: rowP99Ms } = p50p99(delays);
    const eventDelays = inRange.flatMap((e) => {
      const at = e.type === "task.submitted" ? sent.get(e.taskId) : undefined;
      return at === undefined ? [] : [e.at - at];
    });
    const { p50: eventP50Ms, p99: eventP99Ms } = p50p99(eventDelays);
    if (delays.length < total) {
      // Rows are skipped when more than a page of tasks comes between two reloads of the list.
      const updates = [...new Set([...sent.keys()].flatMap((id) => bench.rows[id] ?? []))].sort(
        (a, b) => a - b,
      );
      const gap = updates.reduce((m, t, i) => (i === 0 ? m : Math.max(m, t - (updates[i - 1] as number))), 0);
      note(
        `dashboard: ${total - delays.length} submitted tasks never had a row on the first page; longest time between two list updates ${Math.round(gap)} ms`,
      );
    }
    await page.close();
    return {
      browser: browser.version(),
      tasksInStore: stored,
      coldMs,
      warmMs,
      warmP50Ms,
      warmMaxMs,
      offered: total,
      offerSeconds,
      eventRange,
      received,
      missing,
      duplicates,
      reconnects,
      rowsMatch,
      longTasks: long.length,
      longTaskMaxMs: long.reduce((m, t) => Math.max(m, t.duration), 0),
      blockingMs: long.reduce((s, t) => s + Math.max(0, t.duration - 50), 0),
      rowSamples: delays.length,
      rowsNeverShown: total - delays.length,
      rowP50Ms,
      rowP99Ms,
      eventP50Ms,
      eventP99Ms,
    };
  } finally {
    await browser?.close().catch(() => {});
    client.close();
    await gw.stop();
  }
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");

/** The dashboard section of the results, as Markdown. */
export function renderDashboard(d: DashboardResult): string[] {
  const head = "### Dashboard (headless Chromium)";
  if (d.skipped) return [head, "", `Skipped: ${d.skipped}.`, ""];
  return [
    head,
    "",
    `Chromium ${d.browser}, ${int(d.tasksInStore)} tasks in the store. First view: \`/\` with the session in sessionStorage, from navigation start to a task row and the indicator live, painted; ${firstViews} fresh pages, the first with an empty cache (cold). Events: ${d.offered} SubmitTask in ${d.offerSeconds.toFixed(1)} s with the task list open, counted in the page's own WatchEvents response (${d.reconnects} reconnect${d.reconnects === 1 ? "" : "s"}${d.duplicates > 0 ? `, ${d.duplicates} duplicates` : ""}); first page of rows ${d.rowsMatch ? "equal to" : "**not** equal to"} ListTasks' 50 newest.`,
    "",
    `| Tasks in store | First view p50 ms, warm (target < ${firstViewTarget}) | max ms, warm | cold ms | Events offered | received | missing | Long tasks | max long task ms | total blocking ms | Submit-to-event p50 ms | p99 ms | Submit-to-row p50 ms | p99 ms | rows never shown |`,
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    `| ${int(d.tasksInStore)} | ${int(d.warmP50Ms)} | ${int(d.warmMaxMs)} | ${int(d.coldMs)} | ${int(d.offered)}${d.eventRange === d.offered ? "" : ` (${int(d.eventRange)} in the log)`} | ${int(d.received)} | ${int(d.missing)} | ${d.longTasks} | ${int(d.longTaskMaxMs)} | ${int(d.blockingMs)} | ${int(d.eventP50Ms)} | ${int(d.eventP99Ms)} | ${int(d.rowP50Ms)} | ${int(d.rowP99Ms)} | ${int(d.rowsNeverShown)} |`,
    "",
  ];
}
