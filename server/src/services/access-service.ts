/**
 * The access-control RPCs of SpageAPI: Authenticate and ValidateToken from the contract, and the
 * gateway's key, token and audit administration. Scopes are checked before these run (auth
 * interceptor); what is left here is what depends on the request itself.
 */

import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { ErrorSchema } from "../../../gen/spage/core/common_pb.js";
import type { AccessPolicy } from "../auth/access-policy.js";
import { countAuthFailure, refuseIfLockedOut } from "../auth/auth-failures.js";
import type { Authenticator } from "../auth/authenticator.js";
import { parseCredential, secretMatches } from "../auth/credentials.js";
import type { Principal } from "../auth/principal.js";
import type { RateLimiter } from "../auth/rate-limiter.js";
import { kAuditDetail, kClaimedKeyId, kPeerAddress, kPrincipal } from "../context-keys.js";
import { DomainError, InvalidArgumentError, PermissionDeniedError } from "../domain/errors.js";
import type { AccessStore } from "../store/access-store.js";
import { auditToWire, keyToWire } from "./access-wire.js";
import { createApiKey, revokeApiKey } from "./api-keys.js";

/** What the access RPCs need. */
export interface AccessServiceDeps {
  readonly store: AccessStore;
  readonly authn: Authenticator;
  readonly limiter: RateLimiter;
  readonly policy: AccessPolicy;
}

/** Largest sequence a store numbers records with (signed 64-bit). */
const maxStoredSequence = 2n ** 63n - 1n;

type AccessMethods = Pick<
  ServiceImpl<typeof SpageAPI>,
  | "authenticate"
  | "validateToken"
  | "createApiKey"
  | "listApiKeys"
  | "revokeApiKey"
  | "revokeToken"
  | "revokePersonSessions"
  | "listAuditEvents"
>;

const seconds = (d: Date | undefined) => (d ? BigInt(Math.floor(d.getTime() / 1000)) : 0n);
const permissions = (p: Principal) => Object.fromEntries([...p.scopes].map((s) => [s, "true"]));

function callerOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(kPrincipal);
  if (!p) throw new PermissionDeniedError("this call needs credentials");
  return p;
}

/** Creates the access-control methods of SpageAPI. */
export function createAccessService(deps: AccessServiceDeps): AccessMethods {
  const { store, authn, limiter, policy } = deps;
  return {
    async authenticate(req, ctx) {
      if (req.apiKey === "") throw InvalidArgumentError.field("api_key", "required: the API key (spk_...)");
      if (req.clientId.length > 128) throw InvalidArgumentError.field("client_id", "at most 128 characters");
      const address = ctx.values.get(kPeerAddress);
      const claimed = parseCredential(req.apiKey);
      if (claimed?.kind === "api_key") ctx.values.set(kClaimedKeyId, claimed.id);
      ctx.values.set(kAuditDetail, `client_id=${req.clientId}`);
      refuseIfLockedOut(limiter, policy, address);
      try {
        const session = await authn.issueSession(req.apiKey, req.clientId);
        ctx.values.set(kPrincipal, session.principal);
        return {
          success: true,
          token: session.token,
          expiresAt: seconds(session.expiresAt),
          permissions: permissions(session.principal),
        };
      } catch (err) {
        countAuthFailure(limiter, policy, address);
        throw err;
      }
    },

    async validateToken(req) {
      if (req.token === "") throw InvalidArgumentError.field("token", "required: the token to check");
      try {
        const p = await authn.resolve(req.token);
        return {
          valid: true,
          clientId: p.clientId,
          permissions: permissions(p),
          expiresAt: seconds(p.expiresAt),
        };
      } catch (err) {
        if (!(err instanceof DomainError) || err.kind !== "unauthenticated") throw err;
        return {
          valid: false,
          error: create(ErrorSchema, { code: "unauthenticated", message: err.message }),
        };
      }
    },

    async createApiKey(req, ctx) {
      const caller = callerOf(ctx);
      const { record, apiKey } = await createApiKey(store, req.name, req.scopes, caller.keyId || caller.name);
      ctx.values.set(
        kAuditDetail,
        `created key ${record.id} "${record.name}" with ${record.scopes.join(",")}`,
      );
      return { key: keyToWire(record), apiKey };
    },

    async listApiKeys(req) {
      return { keys: (await store.listApiKeys(req.includeRevoked)).map(keyToWire) };
    },

    async revokeApiKey(req, ctx) {
      const key = await revokeApiKey(store, req.id);
      ctx.values.set(kAuditDetail, `revoked key ${key.id} "${key.name}"`);
      return { key: keyToWire(key) };
    },

    async revokeToken(req, ctx) {
      const caller = callerOf(ctx);
      const parsed = parseCredential(req.token);
      if (parsed?.kind !== "session") {
        throw InvalidArgumentError.field(
          "token",
          "expected a session token (sps_...); revoke API keys with RevokeApiKey",
        );
      }
      if (parsed.id !== caller.sessionId && !caller.scopes.has("admin")) {
        throw new PermissionDeniedError('revoking another caller\'s token needs scope "admin"', {
          scope: "admin",
        });
      }
      const s = await store.getSession(parsed.id);
      if (!s || !secretMatches(parsed.secret, s.salt, s.hash)) return { revoked: false };
      ctx.values.set(
        kAuditDetail,
        s.person
          ? `revoked session ${s.id} of person ${s.person.issuer}#${s.person.subject}`
          : `revoked session ${s.id} of key ${s.keyId}`,
      );
      return { revoked: await store.revokeSession(s.id, new Date()) };
    },

    async revokePersonSessions(req, ctx) {
      if (req.subject === "") {
        throw InvalidArgumentError.field(
          "subject",
          "required: the person's sub claim at their identity provider",
        );
      }
      const revoked = await store.revokePersonSessions(req.issuer, req.subject, new Date());
      ctx.values.set(
        kAuditDetail,
        `revoked ${revoked} sessions of ${req.issuer === "" ? "any issuer" : req.issuer}#${req.subject}`,
      );
      return { revoked };
    },

    async listAuditEvents(req) {
      if (req.limit < 0 || req.limit > 1000)
        throw InvalidArgumentError.field("limit", "0 to 1000 (0 means 100)");
      const limit = req.limit === 0 ? 100 : req.limit;
      // No record can follow a sequence past what the store can number.
      if (req.afterSequence > maxStoredSequence) return { events: [], nextAfterSequence: 0n };
      const events = await store.listAudit({
        afterSequence: req.afterSequence,
        limit,
        ...(req.principal ? { principal: req.principal } : {}),
        ...(req.taskId ? { taskId: req.taskId } : {}),
      });
      const last = events[events.length - 1];
      return {
        events: events.map(auditToWire),
        nextAfterSequence: events.length === limit && last ? last.sequence : 0n,
      };
    },
  };
}
