/**
 * Maps the domain error catalog (domain/errors.ts) onto Connect's closed set of codes. The one place
 * where a thrown error becomes what the client sees: domain errors keep their message and gain
 * standard details (google.rpc.BadRequest, RetryInfo, ErrorInfo); ConnectErrors pass through;
 * anything else becomes Internal with a generic message and the original kept as `cause` for the log.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../../../gen/google/rpc/error_details_pb.js";
import {
  DomainError,
  type DomainErrorKind,
  InvalidArgumentError,
  ResourceExhaustedError,
} from "../domain/errors.js";
import { hookStream, type StreamHook } from "./stream-errors.js";

/** The RPC status code of each domain error kind. Kept in sync with the catalog by a test. */
export const errorCodeOf: Readonly<Record<DomainErrorKind, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  unavailable: Code.Unavailable,
};

/** Domain used in google.rpc.ErrorInfo details. */
export const errorDomain = "spage.gateway";

/** Converts anything thrown by service code into the ConnectError the client receives. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  if (err instanceof DomainError) {
    const details: NonNullable<ConstructorParameters<typeof ConnectError>[3]> = [
      {
        desc: ErrorInfoSchema,
        value: create(ErrorInfoSchema, {
          reason: err.kind.toUpperCase(),
          domain: errorDomain,
          metadata: { ...err.details },
        }),
      },
    ];
    if (err instanceof InvalidArgumentError) {
      details.push({
        desc: BadRequestSchema,
        value: create(BadRequestSchema, {
          fieldViolations: err.violations.map((v) =>
            create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description }),
          ),
        }),
      });
    }
    if (err instanceof ResourceExhaustedError && err.retryAfterMs !== undefined) {
      const ms = Math.max(0, Math.ceil(err.retryAfterMs));
      details.push({
        desc: RetryInfoSchema,
        value: create(RetryInfoSchema, {
          retryDelay: create(DurationSchema, {
            seconds: BigInt(Math.floor(ms / 1000)),
            nanos: (ms % 1000) * 1_000_000,
          }),
        }),
      });
    }
    // Retry-After (whole seconds, rounded up) for clients and proxies that read headers, not details.
    const metadata =
      err instanceof ResourceExhaustedError && err.retryAfterMs !== undefined
        ? { "retry-after": String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) }
        : undefined;
    return new ConnectError(err.message, errorCodeOf[err.kind], metadata, details, err);
  }
  // Unexpected: never leak internals to the client; the logging interceptor logs `cause`.
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** The stream hook of every call: one, shared. */
const mapsToConnectError: StreamHook = { map: toConnectError };

/** Interceptor that applies `toConnectError` to unary calls and to every streamed message. */
export function createErrorMappingInterceptor(): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) {
        return res;
      }
      return hookStream(res, mapsToConnectError);
    } catch (err) {
      throw toConnectError(err);
    }
  };
}
