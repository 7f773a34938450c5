/**
 * Makes a throwaway self-signed certificate for 127.0.0.1 and localhost with the openssl CLI.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Paths and contents of a fresh certificate and key. */
export interface SelfSigned {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: Buffer;
}

/** Creates the certificate in a new temporary directory. */
export function createSelfSigned(): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), "spage-tls-"));
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      keyPath,
      "-out",
      certPath,
    ],
    { stdio: "ignore" },
  );
  return { certPath, keyPath, cert: readFileSync(certPath) };
}
