/**
 * What a normalised answer says about the outcome of the RPC, for the differential suite's check
 * that its corpus is not vacuous: the status codes it carries, whichever protocol carried them.
 */
import type { Code } from "@connectrpc/connect";
import { codeFromString, codeToString } from "@connectrpc/connect/protocol-connect";
import type { NormalisedAnswer } from "./differential-normalise.js";

/**
 * The RPC codes in `answer` as Connect's code strings ("ok" for success): grpc-status in headers,
 * trailers or a gRPC-Web trailer frame, the `code` of a Connect error body, "ok" for a Connect 200.
 */
export function rpcCodesOf(answer: NormalisedAnswer): string[] {
  const codes = new Set<string>();
  const visit = (value: unknown, key?: string): void => {
    if (key === "grpc-status" && typeof value === "string") {
      codes.add(value === "0" ? "ok" : codeToString(Number(value) as Code));
    } else if (Array.isArray(value)) {
      for (const v of value) visit(v);
    } else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) visit(v, k);
    }
  };
  visit(answer.headers);
  visit(answer.trailers);
  visit(answer.body);
  const contentType = String(answer.headers?.["content-type"] ?? "");
  if (contentType.startsWith("application/json") || contentType.startsWith("application/proto")) {
    const body = answer.body as { code?: unknown } | undefined;
    if (answer.status === 200) codes.add("ok");
    // Only Connect's codes: Fastify's own 415 body has a `code` too (FST_ERR_CTP_INVALID_MEDIA_TYPE).
    else if (typeof body?.code === "string" && codeFromString(body.code) !== undefined) codes.add(body.code);
  }
  return [...codes];
}
