/**
 * The request and response objects the fast path hands its interceptors, as classes: their lazy
 * parts (signal, request headers, response headers and trailers) are getters on the prototype, so
 * every call's objects share one shape. An object literal with getters is a dictionary of its own
 * for every call, and an idle watch stream holds its request for as long as it is open.
 *
 * A copy made with `{ ...res }` would not carry the getters. The interceptors never copy these
 * objects: a fast-path stream response is made hookable (stream-errors.ts), so hooking it returns it
 * unchanged.
 */
import type { DescMethodServerStreaming, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import type { ContextValues } from "@connectrpc/connect";
import type { AbortListener } from "../call-abort.js";
import { type CallContext, copyInto } from "./call-context.js";

/** What a call's request and response both carry: what was called, the message, the context. */
abstract class CallPart<M> {
  constructor(
    readonly stream: boolean,
    readonly service: DescService,
    readonly method: DescMethodUnary | DescMethodServerStreaming,
    readonly message: M,
    readonly context: CallContext,
  ) {}
}

/** A request as Connect's handler builds it (UnaryRequest or StreamRequest), reading its context. */
export class CallRequest<M> extends CallPart<M> {
  readonly requestMethod = "POST";

  get url(): string {
    return this.context.url;
  }

  get contextValues(): ContextValues {
    return this.context.values;
  }

  get signal(): AbortSignal {
    return this.context.signal;
  }

  /** As the context's: hears the call's abort without making its signal (call-abort.ts). */
  whenAborted(listener: AbortListener): void {
    this.context.whenAborted(listener);
  }

  get header(): Headers {
    return this.context.requestHeader;
  }
}

/** A response (UnaryResponse or StreamResponse) whose headers and trailers are its context's. */
export class CallResponse<M> extends CallPart<M> {
  get header(): Headers {
    return this.context.responseHeader;
  }

  get trailer(): Headers {
    return this.context.responseTrailer;
  }
}

/** Whether `res` is the call's own response, whose headers and trailers are the context's already. */
export function isOwnResponse(res: object, ctx: CallContext): boolean {
  return res instanceof CallResponse && res.context === ctx;
}

/**
 * Takes the response headers of `res` into the call's, when an interceptor answered with headers of
 * its own. The call's own response is skipped without reading its `header`, which would make one.
 */
export function adoptResponseHeader(res: { readonly header: Headers }, ctx: CallContext): void {
  if (isOwnResponse(res, ctx)) return;
  if (res.header !== ctx.responseHeaderIfSet && res.header) copyInto(res.header, ctx.responseHeader);
}

/** Takes the response trailers of `res` into the call's, as adoptResponseHeader does headers. */
export function adoptResponseTrailer(res: { readonly trailer: Headers }, ctx: CallContext): void {
  if (isOwnResponse(res, ctx)) return;
  if (res.trailer !== ctx.responseTrailerIfSet && res.trailer) copyInto(res.trailer, ctx.responseTrailer);
}
