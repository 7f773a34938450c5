/**
 * Builds the dashboard when web/dist is missing or older than its sources (web/src, index.html,
 * the Vite config, the generated types in gen/). Run by `npm start` before the gateway starts.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL(".", import.meta.url));
const root = join(web, "..");

function newest(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)));
  return max;
}

/** True when the build is missing or older than any of its sources. */
export function dashboardIsStale(): boolean {
  const built = join(web, "dist", "index.html");
  if (!existsSync(built)) return true;
  const sources = [join(web, "src"), join(web, "index.html"), join(web, "vite.config.ts"), join(root, "gen")];
  return Math.max(...sources.map(newest)) > statSync(built).mtimeMs;
}

/** Builds the dashboard with Vite. */
export async function buildDashboard(): Promise<void> {
  const { build } = await import("vite");
  await build({ configFile: join(web, "vite.config.ts"), logLevel: "warn" });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const force = process.argv.includes("--force");
  if (force || dashboardIsStale()) {
    process.stderr.write("building the dashboard (web/dist)…\n");
    await buildDashboard();
  }
}
