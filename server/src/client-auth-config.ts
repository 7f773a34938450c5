/**
 * The mutual-TLS part of the configuration: --tls-client-ca, --require-client-cert and
 * --client-cert-scopes, checked against each other and against TLS being on.
 */
import { X509Certificate } from "node:crypto";
import { type ClientCertMap, parseClientCertMap } from "./auth/client-cert-map.js";
import { ConfigError } from "./config-error.js";
import { readPem } from "./pem-file.js";

/** How client certificates are asked for, verified and turned into scopes. */
export interface ClientAuth {
  /** PEM bundle of the CAs whose certificates are trusted. */
  readonly ca: Buffer;
  /** Refuse the TLS handshake of a client without a valid certificate. */
  readonly require: boolean;
  /** Which certificates get which scopes (auth/client-cert-map.ts). */
  readonly map: ClientCertMap;
}

/** The mutual-TLS settings, checked against each other; undefined without --tls-client-ca. */
export function clientAuthOf(
  str: (flag: string) => string,
  onOff: (flag: string) => boolean,
  tls: boolean,
): ClientAuth | undefined {
  const caPath = str("tls-client-ca");
  const require = onOff("require-client-cert");
  const scopes = str("client-cert-scopes");
  if (caPath === "") {
    if (require) {
      throw new ConfigError(
        "--require-client-cert needs --tls-client-ca FILE (env SPAGE_TLS_CLIENT_CA): the CAs the client certificates must be signed by",
      );
    }
    if (scopes.trim() !== "") {
      throw new ConfigError(
        "--client-cert-scopes needs --tls-client-ca FILE (env SPAGE_TLS_CLIENT_CA): without it no client certificate is asked for",
      );
    }
    return undefined;
  }
  if (!tls) {
    throw new ConfigError(
      "--tls-client-ca needs TLS: give --tls-cert and --tls-key too (env SPAGE_TLS_CERT and SPAGE_TLS_KEY)",
    );
  }
  let map: ClientCertMap;
  try {
    map = parseClientCertMap(scopes);
  } catch (err) {
    throw new ConfigError(
      `invalid --client-cert-scopes (env SPAGE_CLIENT_CERT_SCOPES): ${(err as Error).message}`,
    );
  }
  const ca = readPem(caPath, "--tls-client-ca");
  try {
    new X509Certificate(ca);
  } catch {
    throw new ConfigError(
      `--tls-client-ca file "${caPath}" holds no PEM certificate: expected one or more CA certificates`,
    );
  }
  return { ca, require, map: Object.freeze(map) };
}
