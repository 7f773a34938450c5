/**
 * A throwaway public-key infrastructure for mutual-TLS tests, made with the openssl CLI in a new
 * temporary directory: CAs, a server certificate for 127.0.0.1 and localhost, and client
 * certificates, current or with validity dates in the past. `openssl ca` signs them, since it is the
 * one openssl 3.0 command that takes explicit start and end dates.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A certificate with its key, as files and contents. */
export interface IssuedCert {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** A CA that signs certificates. */
export interface TestCa extends IssuedCert {
  /** Signs a new certificate for `cn` with the given subject alternative names. */
  issue(cn: string, opts?: IssueOptions): IssuedCert;
}

/** How a certificate is issued. */
export interface IssueOptions {
  /** e.g. `["DNS:core.example.com", "IP:127.0.0.1"]`. */
  readonly san?: readonly string[];
  /** Validity in openssl's YYYYMMDDHHMMSSZ form; default from now for a day. */
  readonly startDate?: string;
  readonly endDate?: string;
}

const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const run = (args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });

/** Creates a CA named `name` in its own temporary directory. */
export function createTestCa(name: string): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "spage-pki-"));
  const certPath = join(dir, "ca.pem");
  const keyPath = join(dir, "ca.key");
  run(["req", "-x509", ...ec, "-days", "2", "-subj", `/CN=${name}`, "-keyout", keyPath, "-out", certPath]);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
  // copy_extensions copies the request's subjectAltName into the certificate.
  const config = join(dir, "ca.cnf");
  writeFileSync(
    config,
    [
      "[ca]",
      "default_ca = test",
      "[test]",
      `database = ${join(dir, "index.txt")}`,
      `new_certs_dir = ${dir}`,
      `serial = ${join(dir, "serial")}`,
      "default_md = sha256",
      "default_days = 1",
      "policy = any",
      "unique_subject = no",
      "copy_extensions = copy",
      "[any]",
      "commonName = supplied",
      "",
    ].join("\n"),
  );
  let n = 0;
  return {
    certPath,
    keyPath,
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    issue(cn, opts = {}) {
      const base = join(dir, `cert-${n++}`);
      const csr = `${base}.csr`;
      const out = { certPath: `${base}.pem`, keyPath: `${base}.key` };
      const san = opts.san?.length ? ["-addext", `subjectAltName=${opts.san.join(",")}`] : [];
      run(["req", "-new", ...ec, "-subj", `/CN=${cn}`, ...san, "-keyout", out.keyPath, "-out", csr]);
      run([
        "ca",
        "-batch",
        "-notext",
        "-config",
        config,
        "-cert",
        certPath,
        "-keyfile",
        keyPath,
        "-in",
        csr,
        "-out",
        out.certPath,
        ...(opts.startDate ? ["-startdate", opts.startDate] : []),
        ...(opts.endDate ? ["-enddate", opts.endDate] : []),
      ]);
      return { ...out, cert: readFileSync(out.certPath), key: readFileSync(out.keyPath) };
    },
  };
}
