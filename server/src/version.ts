/** Version of the gateway, read once from package.json. */
import { readFileSync } from "node:fs";

/** The gateway's version string, e.g. `0.1.0`. */
export const gatewayVersion: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
