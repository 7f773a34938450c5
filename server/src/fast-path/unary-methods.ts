/**
 * The unary methods the fast path may serve, taken from the one route registration (routes.ts):
 * the routes callback runs once against a recording router, which keeps each service and its
 * implementation and replays them into Connect's router, so both paths call the same objects.
 */
import type {
  DescMessage,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  type MethodSerializationLookup,
} from "@connectrpc/connect/protocol";
import { jsonOptionsFor } from "../protocol/json-enum-check.js";

/** A unary implementation as the services define it. */
export type UnaryImpl = (
  req: MessageShape<DescMessage>,
  ctx: HandlerContext,
) => Promise<MessageInitShape<DescMessage>> | MessageInitShape<DescMessage>;

/** One unary method, ready to serve. */
export interface UnaryMethod {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly impl: UnaryImpl;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/** A server-streaming implementation as the services define it. */
export type ServerStreamImpl = (
  req: MessageShape<DescMessage>,
  ctx: HandlerContext,
) => AsyncIterable<MessageInitShape<DescMessage>>;

/** One server-streaming method, ready to serve. */
export interface ServerStreamMethod {
  readonly service: DescService;
  readonly method: DescMethodServerStreaming;
  readonly impl: ServerStreamImpl;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/** Limits the serializers enforce, as Connect's handler gets them. */
export interface SerializationLimits {
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
}

type Registration = [DescService, object, unknown];

/**
 * Runs `routes` once; returns a routes callback that registers the same implementations with
 * Connect, and the tables of unary and server-streaming methods by request path
 * (`/package.Service/Method`). Both read each method's JSON requests with the same options
 * (`jsonOptionsFor`: unknown enum values refused).
 */
export function recordRoutes(
  routes: (router: ConnectRouter) => void,
  limits: SerializationLimits,
): {
  routes: (router: ConnectRouter) => void;
  unary: ReadonlyMap<string, UnaryMethod>;
  serverStreaming: ReadonlyMap<string, ServerStreamMethod>;
} {
  const registered: Registration[] = [];
  const recorder = {
    handlers: [],
    service(service: DescService, impl: object, options?: unknown) {
      registered.push([service, impl, options]);
      return recorder;
    },
    rpc() {
      throw new Error("routes.ts registers whole services; router.rpc is not supported here");
    },
  };
  routes(recorder as unknown as ConnectRouter);

  const unary = new Map<string, UnaryMethod>();
  const serverStreaming = new Map<string, ServerStreamMethod>();
  for (const [service, impl] of registered) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") continue;
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (typeof fn !== "function") continue;
      const path = `/${service.typeName}/${method.name}`;
      const serialization = createMethodSerializationLookup(
        method,
        undefined,
        jsonOptionsFor(method.input),
        limits,
      );
      if (method.methodKind === "unary") {
        const unaryMethod = method as DescMethodUnary;
        unary.set(path, { service, method: unaryMethod, impl: fn.bind(impl) as UnaryImpl, serialization });
      } else {
        const streamMethod = method as DescMethodServerStreaming;
        const streamImpl = fn.bind(impl) as ServerStreamImpl;
        serverStreaming.set(path, { service, method: streamMethod, impl: streamImpl, serialization });
      }
    }
  }
  return {
    routes: (router) => {
      // Method by method, so that each reads its JSON with its own options.
      for (const [service, impl, options] of registered) {
        for (const method of service.methods) {
          const fn = (impl as Record<string, unknown>)[method.localName];
          if (typeof fn !== "function")
            throw new Error(`${service.typeName}/${method.name} is not implemented`);
          router.rpc(
            method,
            fn.bind(impl) as never,
            {
              ...(options as object | undefined),
              jsonOptions: jsonOptionsFor(method.input),
            } as never,
          );
        }
      }
    },
    unary,
    serverStreaming,
  };
}
