/**
 * Floor for native gRPC: a raw node:http2 server (h2c) that answers every POST, without reading what
 * was asked, with the fixed gRPC answer of GetTaskStatus: response headers, one DATA frame holding
 * the enveloped SPAGE_BENCH_RESPONSE message, trailers `grpc-status: 0`. No gRPC library, no routing,
 * no decoding: what Node's HTTP/2 alone costs per call.
 */
import * as http2 from "node:http2";
import { envelope } from "../grpc-frames.js";
import { announce, benchResponseFromEnv, exitOnSigterm } from "./peer-task.js";

const data = envelope(benchResponseFromEnv().bytes);
const headers = { ":status": 200, "content-type": "application/grpc+proto" };
const trailers = { "grpc-status": "0" };

const server = http2.createServer();
server.on("stream", (stream, requestHeaders) => {
  // A client that resets its stream must not take the server down.
  stream.on("error", () => {});
  // The request body is drained, never decoded.
  stream.resume();
  if (requestHeaders[":method"] !== "POST") {
    stream.respond({ ":status": 405 }, { endStream: true });
    return;
  }
  stream.respond(headers, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(trailers));
  stream.end(data);
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  announce(typeof addr === "object" && addr ? addr.port : 0);
});
exitOnSigterm((done) => server.close(done));
