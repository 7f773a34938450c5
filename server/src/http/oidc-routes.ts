/**
 * The browser side of single sign-on:
 * - `GET /auth/oidc`: whether it is on, and the provider's name for the dashboard's button;
 * - `GET /auth/oidc/login?return=#/route`: sends the browser to the provider;
 * - `GET /auth/oidc/callback`: where the provider sends it back; on success the new session token
 *   goes into a sealed, HttpOnly cookie only `/auth/oidc/session` receives, and the browser goes
 *   back to the dashboard; a person without a mapped group gets a page saying so;
 * - `POST /auth/oidc/session`: the dashboard takes the token (once) and keeps it like a key's.
 * The token never appears in a URL, so it is in no history, log or Referer.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { OidcSignIn, SignedInPerson } from "../auth/oidc/oidc-sign-in.js";
import { signInTtlMs } from "../auth/oidc/oidc-sign-in.js";
import { createCookieSeal } from "../auth/oidc/sealed-cookie.js";
import { auditDetailOf, personPrincipalName } from "../auth/principal.js";
import type { AuditDraft, AuditLog } from "../services/audit-log.js";

/** What the routes need. */
export interface OidcRouteDeps {
  /** Unset when single sign-on is off. */
  readonly signIn?: OidcSignIn;
  /** Seals the session on its way to the page (keyed like the sign-in). */
  readonly clientSecret: string;
  readonly audit: AuditLog;
  /** `scheme://host[:port]` browsers use; "" takes it from each request. */
  readonly publicUrl: string;
  readonly tls: boolean;
  /** The client's address, through trusted proxies. */
  clientAddress(req: FastifyRequest): string;
}

/** What the dashboard receives from `/auth/oidc/session`. */
export interface HandedOverSession {
  readonly token: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  readonly permissions: readonly string[];
  readonly person: { readonly name: string; readonly email: string; readonly subject: string };
}

const signInCookie = "spage_sign_in";
const handoffCookie = "spage_session";
const handoffTtlMs = 60_000;
/** Dashboard routes a sign-in may return to: a hash route, nothing that leaves the page. */
const returnRoute = /^#\/[\w\-./?=&%,:@]*$/;

/** Registers the sign-in routes (the first one answers even when single sign-on is off). */
export function registerOidcRoutes(app: FastifyInstance, deps: OidcRouteDeps): void {
  const { signIn } = deps;
  app.get("/auth/oidc", async (_req, reply) => {
    reply.header("cache-control", "no-store");
    return signIn ? { enabled: true, name: signIn.displayName } : { enabled: false };
  });
  if (!signIn) return;
  const handoff = createCookieSeal(deps.clientSecret, "oidc session handoff");
  const secure = (req: FastifyRequest) => (originOf(req, deps).startsWith("https:") ? "; Secure" : "");
  const audit = (req: FastifyRequest, person: SignedInPerson | undefined, code: string, detail: string) => {
    const draft: AuditDraft = {
      principal: person ? personPrincipalName(person.issuer, person.subject) : "unknown",
      keyId: "",
      clientAddress: deps.clientAddress(req),
      method: "oidc/sign-in",
      taskId: "",
      code,
      requestId: String(req.id),
      detail: auditDetailOf(person && { person }, detail),
    };
    return deps.audit
      .record(draft)
      .catch((err: unknown) => req.log.error({ err }, "audit record not written"));
  };

  app.get<{ Querystring: { return?: string } }>("/auth/oidc/login", async (req, reply) => {
    const wanted = req.query.return ?? "";
    const returnTo = returnRoute.test(wanted) ? wanted : "";
    let started: Awaited<ReturnType<OidcSignIn["start"]>>;
    try {
      started = await signIn.start(`${originOf(req, deps)}/auth/oidc/callback`, returnTo);
    } catch (err) {
      req.log.warn({ err }, "sign-in not started");
      return page(reply, 502, "Sign-in is unavailable", (err as Error).message);
    }
    reply.header(
      "set-cookie",
      `${signInCookie}=${started.pending}; Path=/auth/oidc/callback; HttpOnly; SameSite=Lax; Max-Age=${signInTtlMs / 1000}${secure(req)}`,
    );
    reply.header("cache-control", "no-store");
    return reply.redirect(started.url.href, 302);
  });

  app.get("/auth/oidc/callback", async (req, reply) => {
    const callback = new URL(req.url, "http://callback.invalid");
    const outcome = await signIn.finish(callback, cookieOf(req, signInCookie));
    reply.header("set-cookie", `${signInCookie}=; Path=/auth/oidc/callback; HttpOnly; Max-Age=0`);
    reply.header("cache-control", "no-store");
    if (outcome.kind === "failed") {
      await audit(req, undefined, "unauthenticated", outcome.message);
      return page(reply, outcome.status, "Sign-in failed", outcome.message);
    }
    const { person } = outcome;
    if (outcome.kind === "no-scopes") {
      const groups = person.groups.length > 0 ? person.groups.join(", ") : "none";
      await audit(req, person, "permission_denied", `no mapped group (groups: ${groups})`);
      return page(
        reply,
        403,
        "No access to this gateway",
        `${person.displayName || person.subject} signed in, but none of their groups (${groups}) is given a scope here. Ask an administrator to map one in --oidc-group-scopes.`,
      );
    }
    const { session } = outcome;
    const handed: HandedOverSession = {
      token: session.token,
      expiresAt: Math.floor(session.expiresAt.getTime() / 1000),
      permissions: [...session.principal.scopes],
      person: { name: person.displayName, email: person.email, subject: person.subject },
    };
    await audit(
      req,
      person,
      "ok",
      `session ${session.principal.sessionId} with ${handed.permissions.join(",")}`,
    );
    reply.header("set-cookie", [
      `${signInCookie}=; Path=/auth/oidc/callback; HttpOnly; Max-Age=0`,
      `${handoffCookie}=${handoff.seal(handed, handoffTtlMs)}; Path=/auth/oidc/session; HttpOnly; SameSite=Strict; Max-Age=${handoffTtlMs / 1000}${secure(req)}`,
    ]);
    return reply.redirect(`/?signed-in${outcome.returnTo}`, 302);
  });

  app.post("/auth/oidc/session", async (req, reply) => {
    const sealed = cookieOf(req, handoffCookie);
    const handed = sealed === undefined ? undefined : handoff.open<HandedOverSession>(sealed);
    reply.header("set-cookie", `${handoffCookie}=; Path=/auth/oidc/session; HttpOnly; Max-Age=0`);
    reply.header("cache-control", "no-store");
    if (!handed) {
      return reply.code(404).send({ code: "not_found", message: "no sign-in to take over: sign in again" });
    }
    return handed;
  });
}

/** The origin browsers use to reach this gateway. */
function originOf(req: FastifyRequest, deps: OidcRouteDeps): string {
  if (deps.publicUrl !== "") return deps.publicUrl;
  return `${deps.tls ? "https" : "http"}://${req.headers.host ?? req.hostname}`;
}

/** One cookie of the request. */
function cookieOf(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** A small page for the person in the browser. */
function page(reply: FastifyReply, status: number, title: string, message: string): FastifyReply {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return reply
    .code(status)
    .type("text/html; charset=utf-8")
    .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'")
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Spage Gateway</title>
<style>body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}a{color:#0b57d0}</style></head>
<body><main><h1>${esc(title)}</h1><p role="alert">${esc(message)}</p><p><a href="/">Back to the sign-in page</a></p></main></body></html>\n`,
    );
}
