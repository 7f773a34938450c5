/**
 * Answers requests for paths no route serves. gRPC and gRPC-Web clients expect an unknown method to
 * be a Trailers-Only response with grpc-status 12 (UNIMPLEMENTED), not an HTTP 404; everyone else
 * (Connect, browsers, curl) gets a 404 with a JSON body in Connect's error shape.
 */
import type { ServerHttp2Stream } from "node:http2";
import type { FastifyInstance } from "fastify";
import { encodeGrpcMessage } from "../protocol/grpc-message.js";

/** Registers the not-found handler. */
export function registerNotFound(app: FastifyInstance): void {
  app.setNotFoundHandler((req, reply) => {
    const contentType = String(req.headers["content-type"] ?? "");
    const path = req.url.split("?")[0] ?? "";
    const message = `unknown method ${path}: the gateway serves spage.core.SpageExecution and spage.api.SpageAPI`;
    if (req.method === "POST" && /^application\/grpc(-web)?([+;]|$)/.test(contentType)) {
      const headers = {
        "content-type": contentType.split(";")[0] ?? contentType,
        "grpc-status": "12",
        "grpc-message": encodeGrpcMessage(message),
      };
      const stream = (req.raw as { stream?: ServerHttp2Stream }).stream;
      if (stream) {
        // Trailers-Only: one HEADERS frame that ends the stream, as gRPC clients require.
        reply.hijack();
        stream.respond({ ":status": 200, ...headers }, { endStream: true });
        return;
      }
      reply.code(200).headers(headers).send();
      return;
    }
    reply.code(404).send({ code: "unimplemented", message });
  });
}
