/** The error a bad configuration stops the start with. */

/** Thrown for a bad flag or variable; its message is meant for the person starting the gateway. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}
