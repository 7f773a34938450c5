/**
 * An OTLP/HTTP trace sink for the tracing phase: accepts `POST /v1/traces` (JSON, as the gateway's
 * exporter sends) on 127.0.0.1, answers 200 at once, and counts the spans received, so the phase
 * can tell whether the gateway kept up or dropped spans. Runs in the bench process (the load core),
 * as a collector would run off the gateway's core.
 */
import { once } from "node:events";
import { createServer } from "node:http";

/** A running sink. */
export interface OtlpSink {
  /** Base URL for `--otel-endpoint`. */
  readonly url: string;
  /** Spans received so far. */
  spans(): number;
  close(): Promise<void>;
}

/** Starts a sink on a free port. */
export async function startOtlpSink(): Promise<OtlpSink> {
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const body = JSON.parse(text) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
      for (const rs of body.resourceSpans ?? [])
        for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => spans,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
