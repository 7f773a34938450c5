/**
 * What the dashboard tests need to drive a real browser: Debian's Chromium through playwright-core
 * (skipped, with the reason, when it is not installed), screenshots under artifacts/screenshots/,
 * a free port, and polling with a deadline (for conditions, never a fixed wait).
 *
 * The server's tsconfig has no DOM types, so code run in the page is given to Playwright as
 * strings (`page.evaluate<T>("…")`).
 */
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";

/** Where the tests expect Chromium (the Debian package). */
export const chromiumPath = "/usr/bin/chromium";

/** The node:test `skip` option: false when Chromium is there, else why every test is skipped. */
export const chromiumSkip: string | false = existsSync(chromiumPath)
  ? false
  : `Chromium not found at ${chromiumPath} (apt-get install -y chromium)`;

/** Launches headless Chromium. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** artifacts/screenshots/ at the repository root (git-ignored; CI keeps it as an artifact). */
export const screenshotDir = fileURLToPath(new URL("../../../artifacts/screenshots/", import.meta.url));

/** Saves a PNG of the page as artifacts/screenshots/<name>; returns its path. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, name);
  await page.screenshot({ path, fullPage, animations: "disabled" });
  return path;
}

/** A TCP port free right now on 127.0.0.1 (so a server can be restarted on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs `check` until it stops throwing (an assertion block, like Playwright's `expect.poll`), every
 * `intervalMs`, and rethrows its last error once `timeoutMs` has passed.
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Relative luminance (0 black .. 1 white) of a CSS `rgb()`/`rgba()` color; undefined if transparent. */
export function luminance(color: string): number | undefined {
  const m = /rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+))?\s*\)/.exec(color);
  if (!m) return undefined;
  if (m[4] !== undefined && Number(m[4]) === 0) return undefined;
  const [r, g, b] = [m[1], m[2], m[3]].map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
