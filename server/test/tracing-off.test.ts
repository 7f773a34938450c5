/**
 * When the gateway traces and when it does not: the --otel-endpoint flag and the standard
 * OpenTelemetry variables, bad endpoints refused with a message naming the setting, and a gateway
 * that is not tracing sending nothing to a receiver it was pointed at.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfig } from "../src/config.js";
import { startOtlpReceiver } from "./helpers/otlp-receiver.js";
import { startTestServer } from "./helpers/test-server.js";

describe("tracing configuration", () => {
  it("is off by default", () => {
    assert.equal(parseConfig([], {}).tracing, undefined);
  });

  it("--otel-endpoint takes a base URL or the full traces URL", () => {
    const base = parseConfig(["--otel-endpoint", "http://collector:4318"], {}).tracing;
    assert.deepEqual(base, {
      tracesUrl: "http://collector:4318/v1/traces",
      serviceName: "spage-gateway",
      source: "--otel-endpoint",
    });
    const full = parseConfig(["--otel-endpoint", "https://c.example/otlp/v1/traces"], {}).tracing;
    assert.equal(full?.tracesUrl, "https://c.example/otlp/v1/traces");
    const env = parseConfig([], {
      SPAGE_OTEL_ENDPOINT: "http://c:4318/",
      OTEL_SERVICE_NAME: "gw-eu",
    }).tracing;
    assert.equal(env?.tracesUrl, "http://c:4318/v1/traces");
    assert.equal(env?.serviceName, "gw-eu");
    assert.equal(env?.source, "SPAGE_OTEL_ENDPOINT");
  });

  it("follows the standard OTEL_* variables", () => {
    const traces = parseConfig([], { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom" }).tracing;
    assert.equal(traces?.tracesUrl, "http://c:4318/custom");
    const base = parseConfig([], { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).tracing;
    assert.equal(base?.tracesUrl, "http://c:4318/v1/traces");
    const both = {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b/t",
    };
    assert.equal(parseConfig([], both).tracing?.tracesUrl, "http://b/t");
    assert.equal(parseConfig([], { ...both, OTEL_TRACES_EXPORTER: "none" }).tracing, undefined);
    assert.equal(
      parseConfig([], { ...both, OTEL_TRACES_EXPORTER: "console,otlp" }).tracing?.tracesUrl,
      "http://b/t",
    );
    assert.equal(parseConfig([], { ...both, OTEL_SDK_DISABLED: "true" }).tracing, undefined);
    // The kill switch wins over the flag too.
    assert.equal(
      parseConfig(["--otel-endpoint", "http://c:4318"], { OTEL_SDK_DISABLED: "TRUE" }).tracing,
      undefined,
    );
  });

  it("refuses an endpoint that is not an http(s) URL, naming the flag or variable", () => {
    const refused = (argv: string[], env: NodeJS.ProcessEnv, names: RegExp) =>
      assert.throws(
        () => parseConfig(argv, env),
        (err: unknown) =>
          err instanceof ConfigError &&
          names.test(err.message) &&
          /http:\/\/ or https:\/\//.test(err.message),
      );
    refused(
      ["--otel-endpoint", "collector:4318"],
      {},
      /--otel-endpoint.*"collector:4318"|"collector:4318".*--otel-endpoint/,
    );
    refused(["--otel-endpoint", "not a url"], {}, /--otel-endpoint/);
    refused(["--otel-endpoint", "ftp://c/x"], {}, /--otel-endpoint/);
    refused([], { SPAGE_OTEL_ENDPOINT: "nope" }, /SPAGE_OTEL_ENDPOINT/);
    refused([], { OTEL_EXPORTER_OTLP_ENDPOINT: "4318" }, /OTEL_EXPORTER_OTLP_ENDPOINT/);
    refused(
      [],
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "//c/v1/traces" },
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT/,
    );
  });
});

describe("a gateway that does not trace", () => {
  /** Serves a few calls on a gateway with `env`, shuts it down (which flushes spans), and counts what arrived. */
  async function requestsReceived(env: (url: string) => NodeJS.ProcessEnv): Promise<number> {
    const rx = await startOtlpReceiver();
    try {
      const server = await startTestServer([], { env: env(rx.url) });
      try {
        for (const method of ["SubmitTask", "GetTaskStatus"]) {
          const res = await fetch(`${server.url}/spage.api.SpageAPI/${method}`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
            body: JSON.stringify(method === "SubmitTask" ? { type: "job" } : { taskId: "x" }),
          });
          await res.arrayBuffer();
        }
      } finally {
        await server.close();
      }
      return rx.requests;
    } finally {
      await rx.close();
    }
  }

  it("sends nothing, and sends once the same settings turn tracing on", async () => {
    // The control: the same variables without the kill switch make spans arrive, so a receiver
    // that gets nothing below means tracing was off, not that it could not be reached.
    assert.ok((await requestsReceived((url) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: url }))) > 0);
    assert.equal(
      await requestsReceived((url) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_SDK_DISABLED: "true" })),
      0,
    );
    assert.equal(
      await requestsReceived((url) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_TRACES_EXPORTER: "none" })),
      0,
    );
  });
});
