/**
 * Re-encodes `grpc-message` on native gRPC responses of the Connect handler. Connect percent-encodes
 * it with encodeURIComponent, which also escapes `;`, `:`, `,` and `/`; the gRPC spec escapes only
 * bytes outside printable ASCII and `%`, and @grpc/grpc-js decodes with decodeURI, so its users would
 * read "invalid task_id%3A ...". This hook rewrites the header to the spec's encoding; decoders that
 * follow the spec read the same message either way.
 */
import type { FastifyInstance } from "fastify";
import { reencodeConnectGrpcMessage } from "../protocol/grpc-message.js";

type NodeHeaders = Record<string, string | string[] | number | undefined>;

function fix(headers: NodeHeaders | undefined): void {
  const value = headers?.["grpc-message"];
  if (headers && typeof value === "string") headers["grpc-message"] = reencodeConnectGrpcMessage(value);
}

/** Registers the hook for requests with a native gRPC content type. */
export function registerGrpcMessageEncoding(app: FastifyInstance): void {
  app.addHook("onRequest", (req, reply, done) => {
    const contentType = req.headers["content-type"];
    if (typeof contentType === "string" && /^application\/grpc(?!-web)/.test(contentType)) {
      const res = reply.raw as unknown as {
        writeHead: (status: number, headers?: NodeHeaders) => unknown;
        addTrailers: (headers: NodeHeaders) => void;
      };
      const writeHead = res.writeHead.bind(res);
      const addTrailers = res.addTrailers.bind(res);
      res.writeHead = (status, headers) => {
        fix(headers);
        return writeHead(status, headers);
      };
      res.addTrailers = (headers) => {
        fix(headers);
        addTrailers(headers);
      };
    }
    done();
  });
}
