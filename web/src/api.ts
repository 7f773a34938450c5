/**
 * The one client of the gateway: Connect protocol with JSON over fetch, same origin, with the
 * session token as a bearer token. A call refused as UNAUTHENTICATED ends the session.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { clearSession, currentSession } from "./session.js";

const auth: Interceptor = (next) => async (req) => {
  const s = currentSession();
  if (s) req.header.set("authorization", `Bearer ${s.token}`);
  try {
    return await next(req);
  } catch (err) {
    const ce = ConnectError.from(err);
    if (ce.code === Code.Unauthenticated && req.method.name !== "Authenticate") clearSession(ce.rawMessage);
    throw err;
  }
};

/** SpageAPI for the dashboard. */
export const api = createClient(
  SpageAPI,
  createConnectTransport({ baseUrl: window.location.origin, interceptors: [auth] }),
);

/** A readable message for an error from a call, and its field violations when it has some. */
export function describeError(err: unknown): { message: string; fields: Record<string, string> } {
  const ce = ConnectError.from(err);
  const fields: Record<string, string> = {};
  for (const bad of ce.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) fields[v.field] = v.description;
  }
  return { message: ce.rawMessage, fields };
}
