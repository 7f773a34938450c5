/**
 * grpc-js method definitions for the peers, made from the generated descriptors: the path, the
 * streaming flags and (de)serializers with @bufbuild/protobuf, as the gateway encodes.
 */
import {
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

/** The grpc-js definition of a generated method (e.g. `SpageAPI.method.getTaskStatus`). */
export function grpcJsMethod<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { readonly input: I; readonly output: O },
): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  const kind = method.methodKind;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: kind === "client_streaming" || kind === "bidi_streaming",
    responseStream: kind === "server_streaming" || kind === "bidi_streaming",
    requestSerialize: (m) => Buffer.from(toBinary(method.input, m)),
    requestDeserialize: (b) => fromBinary(method.input, b),
    responseSerialize: (m) => Buffer.from(toBinary(method.output, m)),
    responseDeserialize: (b) => fromBinary(method.output, b),
  };
}
