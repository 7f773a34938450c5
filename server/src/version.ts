/** Version of the gateway, read once from package.json. */
import { readFileSync } from "node:fs";
import { inInstallDir } from "./install-dir.js";

/** The gateway's version string, e.g. `0.1.0`. */
export const gatewayVersion: string = (
  JSON.parse(readFileSync(inInstallDir("package.json"), "utf8")) as { version: string }
).version;
