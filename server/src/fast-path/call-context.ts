/**
 * The per-call context of the fast path, built lazily: request headers, response headers and
 * trailers, and the abort signal exist only once something reads them. The signal, once made,
 * aborts like Connect's: at the deadline, when the gateway shuts down, or when the client goes away.
 */
import type { DescMethodUnary, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";

/** Request headers as Node parsed them (lowercase names). */
export type NodeRequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** What a call needs to know about the request it serves. */
export interface CallInit {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly protocolName: string;
  readonly url: string;
  readonly nodeHeaders: NodeRequestHeaders;
  readonly values: ContextValues;
  readonly timeoutMs: number | undefined;
  readonly shutdownSignal: AbortSignal;
  /** True once the client has gone away (stream reset or socket closed). */
  readonly clientGone: () => boolean;
}

/** Headers from Node's header object, skipping HTTP/2 pseudo-headers. */
export function headersFromNode(node: NodeRequestHeaders): Headers {
  const h = new Headers();
  for (const name in node) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const v = node[name];
    if (typeof v === "string") h.append(name, v);
    else if (Array.isArray(v)) for (const item of v) h.append(name, item);
  }
  return h;
}

/** A HandlerContext whose parts are made on first use. */
export class CallContext implements HandlerContext {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly requestMethod = "POST";
  readonly protocolName: string;
  readonly url: string;
  readonly values: ContextValues;
  private readonly init: CallInit;
  private readonly deadline: number | undefined;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onShutdown: (() => void) | undefined;
  private reqHeader: Headers | undefined;
  private resHeader: Headers | undefined;
  private resTrailer: Headers | undefined;
  private ended = false;

  constructor(init: CallInit) {
    this.init = init;
    this.service = init.service;
    this.method = init.method;
    this.protocolName = init.protocolName;
    this.url = init.url;
    this.values = init.values;
    this.deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
  }

  readonly timeoutMs = (): number | undefined =>
    this.deadline === undefined ? undefined : this.deadline - Date.now();

  get requestHeader(): Headers {
    this.reqHeader ??= headersFromNode(this.init.nodeHeaders);
    return this.reqHeader;
  }

  get responseHeader(): Headers {
    this.resHeader ??= new Headers();
    return this.resHeader;
  }

  get responseTrailer(): Headers {
    this.resTrailer ??= new Headers();
    return this.resTrailer;
  }

  /** Response headers an implementation or interceptor set, if any. */
  get responseHeaderIfSet(): Headers | undefined {
    return this.resHeader;
  }

  /** Response trailers an implementation or interceptor set, if any. */
  get responseTrailerIfSet(): Headers | undefined {
    return this.resTrailer;
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const controller = new AbortController();
    this.controller = controller;
    if (this.ended) {
      controller.abort();
      return controller.signal;
    }
    const shutdown = this.init.shutdownSignal;
    if (shutdown.aborted) controller.abort(shutdown.reason);
    else {
      this.onShutdown = () => controller.abort(shutdown.reason);
      shutdown.addEventListener("abort", this.onShutdown, { once: true });
    }
    if (this.deadline !== undefined && !controller.signal.aborted) {
      const left = this.deadline - Date.now();
      const expire = () =>
        controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      if (left <= 0) expire();
      else this.timer = setTimeout(expire, left);
    }
    if (this.init.clientGone() && !controller.signal.aborted) this.clientGone();
    return controller.signal;
  }

  /** The client went away: abort the signal, if anyone holds it. */
  clientGone(): void {
    this.controller?.abort(new ConnectError("operation was aborted", Code.Canceled));
  }

  /** The call is over: stop the deadline timer and the shutdown listener, abort the signal. */
  end(reason?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.onShutdown) this.init.shutdownSignal.removeEventListener("abort", this.onShutdown);
    this.controller?.abort(reason);
  }
}
