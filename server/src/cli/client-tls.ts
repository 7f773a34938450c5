/**
 * The TLS options of the client commands and the agent: `--tls-ca FILE` to trust a gateway whose
 * certificate no public CA signed, and `--tls-client-cert FILE --tls-client-key FILE` to present a
 * client certificate (mutual TLS), so a daemon can authenticate without an API key on disk. Each has
 * a SPAGE_* variable; the flag wins.
 */
import { readFileSync } from "node:fs";
import { UsageError } from "./cli-args.js";

/** The TLS material a client connects with; every field is optional. */
export interface ClientTls {
  /** PEM CA certificates trusted for the gateway's certificate (instead of the system's). */
  readonly ca?: Buffer;
  /** PEM client certificate (chain) presented to the gateway. */
  readonly cert?: Buffer;
  /** PEM private key of the client certificate. */
  readonly key?: Buffer;
}

/** The flags, as parseArgs spells them. */
export const clientTlsFlags = {
  "tls-ca": { type: "string" },
  "tls-client-cert": { type: "string" },
  "tls-client-key": { type: "string" },
} as const;

/**
 * Reads the files the flags (or SPAGE_TLS_CA, SPAGE_TLS_CLIENT_CERT, SPAGE_TLS_CLIENT_KEY) name;
 * undefined when none is given. Throws UsageError for a half-given certificate, an unreadable file,
 * or TLS options with an http:// endpoint (which would silently ignore them).
 */
export function clientTlsOf(
  values: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  endpoint: string,
): ClientTls | undefined {
  const pick = (flag: string, variable: string) => {
    const v = values[flag];
    return typeof v === "string" && v !== "" ? v : env[variable] || undefined;
  };
  const caPath = pick("tls-ca", "SPAGE_TLS_CA");
  const certPath = pick("tls-client-cert", "SPAGE_TLS_CLIENT_CERT");
  const keyPath = pick("tls-client-key", "SPAGE_TLS_CLIENT_KEY");
  if (!caPath && !certPath && !keyPath) return undefined;
  if (!certPath !== !keyPath) {
    throw new UsageError(
      "a client certificate needs both --tls-client-cert FILE and --tls-client-key FILE (SPAGE_TLS_CLIENT_CERT, SPAGE_TLS_CLIENT_KEY)",
    );
  }
  if (!endpoint.startsWith("https:")) {
    throw new UsageError(
      `--tls-ca, --tls-client-cert and --tls-client-key need an https:// --endpoint, not "${endpoint}"`,
    );
  }
  const read = (flag: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(
        `cannot read --${flag} file "${path}": ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  };
  const ca = read("tls-ca", caPath);
  const cert = read("tls-client-cert", certPath);
  const key = read("tls-client-key", keyPath);
  return { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
}
