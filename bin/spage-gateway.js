#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx's loader, so a checkout works after `npm ci`.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../server/src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
// Output is flushed by now; don't let a stray handle keep a finished command alive.
setTimeout(() => process.exit(), 2000).unref();
