/**
 * The mutual-TLS settings: flags and variables are checked against each other at start with a
 * message that says what to fix, and the --client-cert-scopes table parses and matches as the
 * README describes.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import type { PeerCertificate } from "node:tls";
import { certNames } from "../src/auth/client-cert.js";
import { matchClientCert, parseClientCertMap } from "../src/auth/client-cert-map.js";
import { ConfigError, parseConfig, serveHelp } from "../src/config.js";
import { createTestCa, type IssuedCert, type TestCa } from "./helpers/test-pki.js";

let ca: TestCa;
let server: IssuedCert;
before(() => {
  ca = createTestCa("config-test-ca");
  server = ca.issue("localhost", { san: ["DNS:localhost"] });
});

const tls = () => ["--tls-cert", server.certPath, "--tls-key", server.keyPath];

/** Expects parseConfig to refuse `argv` (and `env`) with a ConfigError matching `message`. */
function refuses(argv: string[], message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => parseConfig(argv, env),
    (err: unknown) => err instanceof ConfigError && message.test(err.message),
  );
}

describe("mutual-TLS configuration", () => {
  it("refuses --tls-client-ca without a server certificate", () => {
    refuses(["--tls-client-ca", ca.certPath], /--tls-client-ca needs TLS: give --tls-cert and --tls-key/);
  });

  it("refuses --require-client-cert and --client-cert-scopes without --tls-client-ca", () => {
    refuses([...tls(), "--require-client-cert"], /--require-client-cert needs --tls-client-ca FILE/);
    refuses([], /--require-client-cert needs --tls-client-ca/, { SPAGE_REQUIRE_CLIENT_CERT: "on" });
    refuses([...tls(), "--client-cert-scopes", "cn:a=agent"], /--client-cert-scopes needs --tls-client-ca/);
  });

  it("names the bad entry of --client-cert-scopes", () => {
    const base = [...tls(), "--tls-client-ca", ca.certPath, "--client-cert-scopes"];
    refuses(
      [...base, "cn:ok=agent; daemon-*=agent"],
      /invalid --client-cert-scopes \(env SPAGE_CLIENT_CERT_SCOPES\): bad entry "daemon-\*=agent": expected <kind>:<pattern>=<scope>/,
    );
    refuses([...base, "o:acme=agent"], /bad entry "o:acme=agent".*kind one of cn, dns, ip, uri, email/);
    refuses([...base, "cn:daemon-*=daemon"], /bad entry "cn:daemon-\*=daemon": unknown scope "daemon"/);
    refuses([...base, "cn:daemon-*="], /bad entry "cn:daemon-\*=": no scopes/);
  });

  it("refuses a CA file that is missing or holds no certificate", () => {
    refuses([...tls(), "--tls-client-ca", "/nonexistent/ca.pem"], /cannot read --tls-client-ca file/);
    const junk = join(server.certPath, "..", "junk.pem");
    writeFileSync(junk, "not a certificate\n");
    refuses([...tls(), "--tls-client-ca", junk], /holds no PEM certificate/);
  });

  it("takes the settings from flags or variables; a bare --require-client-cert means on", () => {
    const bare = parseConfig([
      ...tls(),
      "--tls-client-ca",
      ca.certPath,
      "--require-client-cert",
      "--port",
      "0",
    ]);
    assert.equal(bare.tls?.clientAuth?.require, true);
    assert.equal(bare.port, 0);
    const off = parseConfig([...tls(), "--tls-client-ca", ca.certPath, "--require-client-cert", "off"]);
    assert.equal(off.tls?.clientAuth?.require, false);
    const fromEnv = parseConfig([], {
      SPAGE_TLS_CERT: server.certPath,
      SPAGE_TLS_KEY: server.keyPath,
      SPAGE_TLS_CLIENT_CA: ca.certPath,
      SPAGE_REQUIRE_CLIENT_CERT: "on",
      SPAGE_CLIENT_CERT_SCOPES: "cn:daemon-*=agent;dns:core.example.com=execution,tasks:read",
    });
    assert.equal(fromEnv.tls?.clientAuth?.require, true);
    assert.deepEqual(
      fromEnv.tls?.clientAuth?.map.map((e) => [e.kind, e.pattern, e.scopes]),
      [
        ["cn", "daemon-*", ["agent"]],
        ["dns", "core.example.com", ["execution", "tasks:read"]],
      ],
    );
    assert.equal(parseConfig(tls()).tls?.clientAuth, undefined);
    refuses([...tls(), "--tls-client-ca", ca.certPath, "--require-client-cert", "yes"], /expected on or off/);
  });

  it("lists the flags in --help", () => {
    const help = serveHelp();
    for (const flag of ["--tls-client-ca", "--require-client-cert", "--client-cert-scopes"]) {
      assert.ok(help.includes(flag), flag);
    }
    assert.match(help, /SPAGE_CLIENT_CERT_SCOPES/);
  });
});

describe("--client-cert-scopes matching", () => {
  const map = parseClientCertMap(
    "dns:*.ops.example.com=admin; DNS:*.example.com=agent; cn:Daemon-*=agent,tasks:read; uri:spiffe://x/y?a=b=execution; email:Ops@Example.com=tasks:read",
  );
  const match = (kind: "cn" | "dns" | "ip" | "uri" | "email", value: string) =>
    matchClientCert(map, [{ kind, value }])?.entry.scopes;

  it("tries the entries in order, the first match deciding", () => {
    assert.deepEqual(match("dns", "a.ops.example.com"), ["admin"]);
    assert.deepEqual(match("dns", "b.example.com"), ["agent"]);
  });

  it("keeps a DNS wildcard within one label and compares DNS names and emails without case", () => {
    assert.equal(match("dns", "a.b.example.com"), undefined);
    assert.deepEqual(match("dns", "B.EXAMPLE.COM"), ["agent"]);
    assert.deepEqual(match("email", "ops@example.COM"), ["tasks:read"]);
  });

  it("compares common names and URIs exactly, a URI pattern may hold '='", () => {
    assert.deepEqual(match("cn", "Daemon-7.internal"), ["agent", "tasks:read"]);
    assert.equal(match("cn", "daemon-7"), undefined);
    assert.deepEqual(match("uri", "spiffe://x/y?a=b"), ["execution"]);
    assert.equal(match("uri", "spiffe://x/yza=b"), undefined);
  });

  it("matches a name only against entries of its kind", () => {
    assert.equal(match("cn", "b.example.com"), undefined);
    assert.equal(match("ip", "127.0.0.1"), undefined);
  });
});

describe("a certificate's names", () => {
  it("are its CN and every subject alternative name, as Node lists them", () => {
    const issued = createTestCa("names-ca").issue("core-1", {
      san: ["DNS:core.example.com", "IP:10.0.0.7", "URI:spiffe://example.com/core", "email:ops@example.com"],
    });
    const x509 = new X509Certificate(issued.cert);
    // The fields a TLS socket's getPeerCertificate() has, in the same text form.
    const peer = {
      subject: { CN: "core-1" },
      subjectaltname: x509.subjectAltName,
    } as unknown as PeerCertificate;
    assert.deepEqual(certNames(peer), [
      { kind: "cn", value: "core-1" },
      { kind: "dns", value: "core.example.com" },
      { kind: "ip", value: "10.0.0.7" },
      { kind: "uri", value: "spiffe://example.com/core" },
      { kind: "email", value: "ops@example.com" },
    ]);
  });

  it("read a quoted value whole, commas and all", () => {
    const peer = {
      subject: { CN: ["a", "b"] },
      subjectaltname: 'URI:"spiffe://x/a,b", DNS:c.example.com',
    } as unknown as PeerCertificate;
    assert.deepEqual(
      certNames(peer).map((n) => `${n.kind}:${n.value}`),
      ["cn:a", "cn:b", "uri:spiffe://x/a,b", "dns:c.example.com"],
    );
  });
});
