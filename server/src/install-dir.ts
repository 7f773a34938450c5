/**
 * Where the gateway is installed: the directory of its package.json, found by walking up from this
 * module. The answer is the same from the TypeScript sources (server/src/) and from the built
 * bundle (dist/), so the files shipped beside the code (package.json, the SQL migrations, the
 * dashboard build) are found from either.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findInstallDir(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/** The directory holding the gateway's package.json. */
export const installDir = findInstallDir(dirname(fileURLToPath(import.meta.url)));

/** A path inside the install directory, e.g. `inInstallDir("web", "dist")`. */
export const inInstallDir = (...parts: string[]): string => join(installDir, ...parts);
