/**
 * The one catalog of domain errors. Domain and service code throws these; the error-mapping
 * interceptor (interceptors/error-mapping.ts) turns each kind into exactly one RPC status code.
 * Anything thrown that is not in this catalog becomes Internal, with its cause logged and never sent.
 */

/** Every kind of domain error, each mapped to one RPC status code in `errorCodeOf`. */
export type DomainErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unauthenticated"
  | "permission_denied"
  | "unavailable";

/** One invalid field of a request, as reported to the client (google.rpc.BadRequest). */
export interface FieldViolation {
  /** Path of the field in the request, e.g. `payload` or `task_id`. */
  readonly field: string;
  /** What is wrong with it and what is allowed. */
  readonly description: string;
}

/** Base class of every domain error. `kind` decides the RPC status code. */
export abstract class DomainError extends Error {
  abstract readonly kind: DomainErrorKind;
  /** Extra key/value context for the client (also copied into google.rpc.ErrorInfo metadata). */
  readonly details: Readonly<Record<string, string>>;

  constructor(message: string, details: Record<string, string> = {}) {
    super(message);
    this.name = new.target.name;
    this.details = details;
  }
}

/** A request field is missing, malformed or out of bounds. */
export class InvalidArgumentError extends DomainError {
  readonly kind = "invalid_argument";
  readonly violations: readonly FieldViolation[];

  constructor(violations: readonly FieldViolation[]) {
    const first = violations[0];
    const message =
      violations.length === 1 && first
        ? `invalid ${first.field}: ${first.description}`
        : `invalid request: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`;
    super(message);
    this.violations = violations;
  }

  /** Shorthand for a single bad field. */
  static field(field: string, description: string): InvalidArgumentError {
    return new InvalidArgumentError([{ field, description }]);
  }
}

/** The task (or other named thing) does not exist. */
export class NotFoundError extends DomainError {
  readonly kind = "not_found";
}

/** Something with the same id exists and differs from what was asked. */
export class AlreadyExistsError extends DomainError {
  readonly kind = "already_exists";
}

/** The request is valid, but the current state does not allow it (e.g. an illegal transition). */
export class FailedPreconditionError extends DomainError {
  readonly kind = "failed_precondition";
}

/** A limit was hit: too many requests, a full buffer, a watcher that fell too far behind. */
export class ResourceExhaustedError extends DomainError {
  readonly kind = "resource_exhausted";
  /** How long the client should wait before trying again, in milliseconds, when known. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, details: Record<string, string> = {}, retryAfterMs?: number) {
    super(message, details);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Missing, malformed, expired or revoked credentials. */
export class UnauthenticatedError extends DomainError {
  readonly kind = "unauthenticated";
}

/** Valid credentials without the scope the call needs. */
export class PermissionDeniedError extends DomainError {
  readonly kind = "permission_denied";
}

/** The gateway cannot serve this now (for example it is shutting down); retrying elsewhere may work. */
export class UnavailableError extends DomainError {
  readonly kind = "unavailable";
}
