/**
 * The per-call context of the fast path, built lazily: request headers, response headers and
 * trailers, and the abort signal exist only once something reads them. Once something listens (the
 * signal, or whenAborted), the call aborts like Connect's: at the deadline, when the gateway shuts
 * down, when the client goes away, and at its end.
 */
import type { DescMethodServerStreaming, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { type AbortListener, type AbortNotifier, tellAborted } from "../call-abort.js";

/** Request headers as Node parsed them (lowercase names). */
export type NodeRequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** Where a request was sent; its URL is put together only when read. */
export interface RequestTarget {
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
}

/** What a call needs to know about the request it serves. */
export interface CallInit {
  readonly service: DescService;
  readonly method: DescMethodUnary | DescMethodServerStreaming;
  readonly protocolName: string;
  readonly target: RequestTarget;
  readonly nodeHeaders: NodeRequestHeaders;
  readonly values: ContextValues;
  readonly timeoutMs: number | undefined;
  /** The calls the gateway's shutdown aborts. */
  readonly shutdown: CallsInProgress;
  /**
   * True once the client has gone away (stream reset or socket closed): a function, or the Node
   * stream itself (gone once destroyed), which spares an open stream a closure of its own.
   */
  readonly clientGone: (() => boolean) | { readonly destroyed: boolean };
}

/**
 * The request headers as a `Headers`, read straight from Node's header object (names are already
 * lowercase; HTTP/2 pseudo-headers are left out). Reading costs nothing up front, where building a
 * `Headers` validates and copies every header of every call; the first change makes a real copy.
 */
export class NodeHeaderView implements Headers {
  private copy: Headers | undefined;

  constructor(private node: NodeRequestHeaders) {}

  /** Reads from `node` from now on: the same headers, held in another object. */
  rebase(node: NodeRequestHeaders): void {
    this.node = node;
  }

  private own(): Headers {
    if (!this.copy) {
      const h = new Headers();
      for (const [name, value] of this.pairs()) h.append(name, value);
      this.copy = h;
    }
    return this.copy;
  }

  private *pairs(): Generator<[string, string]> {
    for (const name of Object.keys(this.node).sort()) {
      if (name.charCodeAt(0) === 58 /* ":" */) continue;
      const v = this.node[name];
      if (typeof v === "string") yield [name, v];
      else if (Array.isArray(v)) yield [name, v.join(", ")];
    }
  }

  get(name: string): string | null {
    if (this.copy) return this.copy.get(name);
    const key = name.toLowerCase();
    if (key.charCodeAt(0) === 58) return null;
    const v = this.node[key];
    if (v === undefined) return null;
    return typeof v === "string" ? v : v.join(", ");
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  getSetCookie(): string[] {
    if (this.copy) return this.copy.getSetCookie();
    const v = this.node["set-cookie"];
    return v === undefined ? [] : typeof v === "string" ? [v] : [...v];
  }

  set(name: string, value: string): void {
    this.own().set(name, value);
  }

  append(name: string, value: string): void {
    this.own().append(name, value);
  }

  delete(name: string): void {
    this.own().delete(name);
  }

  forEach(cb: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this);
  }

  entries(): ReturnType<Headers["entries"]> {
    return (this.copy ? this.copy.entries() : this.pairs()) as ReturnType<Headers["entries"]>;
  }

  keys(): ReturnType<Headers["keys"]> {
    return (function* (it: Iterable<[string, string]>) {
      for (const [k] of it) yield k;
    })(this.entries()) as ReturnType<Headers["keys"]>;
  }

  values(): ReturnType<Headers["keys"]> {
    return (function* (it: Iterable<[string, string]>) {
      for (const [, v] of it) yield v;
    })(this.entries()) as ReturnType<Headers["keys"]>;
  }

  [Symbol.iterator](): ReturnType<Headers["entries"]> {
    return this.entries();
  }
}

/**
 * Headers whose values open streams keep shared: every request brings strings of its own, and ten
 * thousand watchers mostly send the same few content types, `te` and user agents.
 */
const sharedHeaders: ReadonlySet<string> = new Set([
  "content-type",
  "te",
  "user-agent",
  "grpc-accept-encoding",
  "accept-encoding",
]);
const sharedValues = new Map<string, string>();
/** Distinct values shared at most, so odd clients cannot grow the table without end. */
const maxSharedValues = 256;

/** The shared copy of `value`, remembered while there is room. */
function shared(value: string): string {
  const known = sharedValues.get(value);
  if (known !== undefined) return known;
  if (sharedValues.size < maxSharedValues && value.length <= 256) sharedValues.set(value, value);
  return value;
}

/** A HandlerContext whose parts are made on first use. */
export class CallContext implements HandlerContext, AbortNotifier {
  readonly service: DescService;
  readonly method: DescMethodUnary | DescMethodServerStreaming;
  readonly requestMethod = "POST";
  readonly protocolName: string;
  readonly values: ContextValues;
  private readonly target: RequestTarget;
  private nodeHeaders: NodeRequestHeaders;
  private readonly shutdown: CallsInProgress;
  private readonly client: (() => boolean) | { readonly destroyed: boolean };
  private readonly deadline: number | undefined;
  private controller: AbortController | undefined;
  private abortListeners: AbortListener | AbortListener[] | undefined;
  /** Set once the call is aborted, with why. */
  private abortState: { readonly reason: unknown } | undefined;
  /** Whether anyone listens for the abort, so the shutdown and the deadline must abort it. */
  private armed = false;
  private timer: NodeJS.Timeout | undefined;
  private reqHeader: Headers | undefined;
  private resHeader: Headers | undefined;
  private resTrailer: Headers | undefined;
  private ended = false;

  constructor(init: CallInit) {
    this.nodeHeaders = init.nodeHeaders;
    this.shutdown = init.shutdown;
    this.client = init.clientGone;
    this.service = init.service;
    this.method = init.method;
    this.protocolName = init.protocolName;
    this.target = init.target;
    this.values = init.values;
    this.deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
  }

  /** The request's URL, made when read: an open stream need not hold it. */
  get url(): string {
    const t = this.target;
    return `${t.scheme}://${t.authority}${t.path}`;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get requestHeader(): Headers {
    this.reqHeader ??= new NodeHeaderView(this.nodeHeaders);
    return this.reqHeader;
  }

  /**
   * For a call that stays open (a stream), once its interceptors have run: keeps only the request
   * headers a `Headers` shows, in a small object of their own, and lets go of Node's header object
   * (a dictionary, with the pseudo-headers' strings) for the rest of the call.
   */
  settleRequestHeaders(): void {
    const compact: Record<string, string | string[]> = {};
    for (const name in this.nodeHeaders) {
      if (name.charCodeAt(0) === 58 /* ":" */) continue;
      const v = this.nodeHeaders[name];
      if (v !== undefined) compact[name] = typeof v === "string" && sharedHeaders.has(name) ? shared(v) : v;
    }
    this.nodeHeaders = compact;
    if (this.reqHeader instanceof NodeHeaderView) this.reqHeader.rebase(compact);
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
    if (this.abortState) controller.abort(this.abortState.reason);
    else this.arm();
    return controller.signal;
  }

  /**
   * Calls `listener` once when the call is aborted, as its signal would be, without making the
   * signal: an open stream that only needs to hear the abort holds no EventTarget.
   */
  whenAborted(listener: AbortListener): void {
    if (this.abortState) {
      tellAborted(listener, this.abortState.reason);
      return;
    }
    if (!this.abortListeners) this.abortListeners = listener;
    else if (Array.isArray(this.abortListeners)) this.abortListeners.push(listener);
    else this.abortListeners = [this.abortListeners, listener];
    this.arm();
  }

  /**
   * Once someone listens (the signal or whenAborted): abort on shutdown, at the deadline, and now
   * if the call already ended or the client is already gone.
   */
  private arm(): void {
    if (this.armed || this.abortState) return;
    this.armed = true;
    if (this.ended) {
      this.abort(undefined);
      return;
    }
    const shutdown = this.shutdown.signal;
    if (shutdown.aborted) {
      this.abort(shutdown.reason);
      return;
    }
    this.shutdown.add(this);
    if (this.deadline !== undefined) {
      const left = this.deadline - Date.now();
      if (left <= 0) this.expire();
      else this.timer = setTimeout(() => this.expire(), left);
    }
    const client = this.client;
    const gone = typeof client === "function" ? client() : client.destroyed;
    if (!this.abortState && gone) this.clientGone();
  }

  private expire(): void {
    this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  }

  /** Aborts the call once, telling the signal (if made) and every listener. */
  private abort(reason: unknown): void {
    if (this.abortState) return;
    this.abortState = { reason };
    if (this.timer) clearTimeout(this.timer);
    if (this.armed) this.shutdown.delete(this);
    this.controller?.abort(reason);
    const listeners = this.abortListeners;
    this.abortListeners = undefined;
    if (Array.isArray(listeners)) for (const l of listeners) tellAborted(l, reason);
    else if (listeners) tellAborted(listeners, reason);
  }

  /** The client went away: abort the call, if anyone listens. */
  clientGone(): void {
    if (this.armed) this.abort(new ConnectError("operation was aborted", Code.Canceled));
  }

  /** The call is over: stop the deadline timer and the shutdown listener, abort the call. */
  end(reason?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (this.armed) this.abort(reason);
  }

  /** The gateway is shutting down: abort the call with the shutdown's reason. */
  shutDown(): void {
    this.abort(this.shutdown.signal.reason);
  }
}

/**
 * The calls whose signal exists, aborted together when the gateway shuts down, through one
 * listener on the shutdown signal: a listener of its own for every call would be held by every
 * open stream for as long as it is open.
 */
export class CallsInProgress {
  private readonly calls = new Set<CallContext>();

  constructor(readonly signal: AbortSignal) {
    signal.addEventListener(
      "abort",
      () => {
        for (const call of this.calls) call.shutDown();
        this.calls.clear();
      },
      { once: true },
    );
  }

  add(call: CallContext): void {
    this.calls.add(call);
  }

  delete(call: CallContext): void {
    this.calls.delete(call);
  }

  /** How many calls the shutdown would abort now. */
  get size(): number {
    return this.calls.size;
  }
}

/** A listener that does nothing: for a stream's "error" once its call is answered or abandoned. */
export const ignore = (): void => {};

/** `call` wrapped in `interceptors`, outermost first, as Connect's handler composes them. */
export function withInterceptors<F>(interceptors: readonly Interceptor[], call: F): F {
  let next = call;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = (interceptors[i] as Interceptor)(next as never) as F;
  }
  return next;
}

/** Copies every header of `from` into `to`. */
export function copyInto(from: Headers, to: Headers): void {
  from.forEach((value, name) => {
    to.set(name, value);
  });
}
