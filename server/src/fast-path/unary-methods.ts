/**
 * The unary methods the fast path may serve, taken from the one route registration (routes.ts):
 * the routes callback runs once against a recording router, which keeps each service and its
 * implementation and replays them into Connect's router, so both paths call the same objects.
 */
import type {
  DescMessage,
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

/** Limits the serializers enforce, as Connect's handler gets them. */
export interface SerializationLimits {
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
}

type Registration = [DescService, object, unknown];

/**
 * Runs `routes` once; returns a routes callback that registers the same implementations with
 * Connect, and the table of unary methods by request path (`/package.Service/Method`).
 */
export function recordRoutes(
  routes: (router: ConnectRouter) => void,
  limits: SerializationLimits,
): { routes: (router: ConnectRouter) => void; unary: ReadonlyMap<string, UnaryMethod> } {
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
  for (const [service, impl] of registered) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (typeof fn !== "function") continue;
      unary.set(`/${service.typeName}/${method.name}`, {
        service,
        method: method as DescMethodUnary,
        impl: fn.bind(impl) as UnaryImpl,
        serialization: createMethodSerializationLookup(
          method as DescMethodUnary,
          undefined,
          undefined,
          limits,
        ),
      });
    }
  }
  return {
    routes: (router) => {
      for (const [service, impl, options] of registered) {
        router.service(service, impl as never, options as never);
      }
    },
    unary,
  };
}
