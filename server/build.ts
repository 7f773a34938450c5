/**
 * Builds the gateway into one JavaScript file, dist/gateway.js, which `npm start` runs with plain
 * `node`: the project's modules bundled, packages left to node_modules. Running the TypeScript
 * through a loader costs every call and every open stream: the loader keeps each function's name
 * by defining a property on every closure it creates, and its own code stays resident.
 * Run as a script (`npm run build:server`) or call buildGateway().
 */
import { pathToFileURL } from "node:url";
import { buildSync } from "esbuild";
import { inInstallDir } from "./src/install-dir.js";

/** Where `npm start` expects the built gateway. */
const bundlePath = inInstallDir("dist", "gateway.js");

/** Bundles server/src/main.ts into `outfile` (the bundle must stay inside the install directory). */
export function buildGateway(outfile = bundlePath): string {
  buildSync({
    entryPoints: [inInstallDir("server", "src", "main.ts")],
    outfile,
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    logLevel: "warning",
  });
  return outfile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) buildGateway();
