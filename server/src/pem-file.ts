/** Reading the PEM files the configuration names. */
import { readFileSync } from "node:fs";
import { ConfigError } from "./config-error.js";

/** Reads a PEM file a flag names; a ConfigError says which flag when it cannot. */
export function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(
      `cannot read ${flag} file "${path}": ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}
