/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), built from the generated file
 * descriptors, so `buf curl`, grpcurl and Postman can list and call methods without .proto files.
 * Each stream sends a file's transitive dependencies along with it, once per stream, as the
 * reference implementations do.
 */
import { type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ReflectionV1 } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { abortable } from "../events/abortable.js";

/** The reflection services, so callers can list them among the served services. */
export const reflectionServices = [ReflectionV1, ReflectionV1Alpha] as const;

/** Index of everything reflection can answer about. */
interface DescriptorIndex {
  readonly services: readonly string[];
  readonly filesByName: ReadonlyMap<string, DescFile>;
  readonly fileBySymbol: ReadonlyMap<string, DescFile>;
  /** message type name -> extension number -> file defining it */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, DescFile>>;
}

/** Indexes the files of the given services and all their dependencies. */
export function indexDescriptors(services: readonly DescService[]): DescriptorIndex {
  const filesByName = new Map<string, DescFile>();
  const fileBySymbol = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const addMessage = (m: DescMessage, file: DescFile) => {
    fileBySymbol.set(m.typeName, file);
    for (const f of m.fields) fileBySymbol.set(`${m.typeName}.${f.name}`, file);
    for (const o of m.oneofs) fileBySymbol.set(`${m.typeName}.${o.name}`, file);
    for (const n of m.nestedMessages) addMessage(n, file);
    for (const e of m.nestedEnums) fileBySymbol.set(e.typeName, file);
    for (const x of m.nestedExtensions) fileBySymbol.set(x.typeName, file);
  };
  const addFile = (file: DescFile) => {
    if (filesByName.has(file.proto.name)) return;
    filesByName.set(file.proto.name, file);
    for (const dep of file.dependencies) addFile(dep);
    for (const m of file.messages) addMessage(m, file);
    for (const e of file.enums) {
      fileBySymbol.set(e.typeName, file);
      for (const v of e.values)
        fileBySymbol.set(`${e.typeName.split(".").slice(0, -1).join(".")}.${v.name}`, file);
    }
    for (const s of file.services) {
      fileBySymbol.set(s.typeName, file);
      for (const m of s.methods) fileBySymbol.set(`${s.typeName}.${m.name}`, file);
    }
    for (const x of file.extensions) {
      fileBySymbol.set(x.typeName, file);
      const byNumber = extensions.get(x.extendee.typeName) ?? new Map<number, DescFile>();
      byNumber.set(x.number, file);
      extensions.set(x.extendee.typeName, byNumber);
    }
  };
  for (const s of services) addFile(s.file);
  return { services: services.map((s) => s.typeName), filesByName, fileBySymbol, extensions };
}

type ReflectionImpl = ServiceImpl<typeof ReflectionV1>;

/** Creates the v1 and v1alpha reflection services over the given served services. */
export function createReflectionServices(served: readonly DescService[]): {
  v1: ServiceImpl<typeof ReflectionV1>;
  v1alpha: ServiceImpl<typeof ReflectionV1Alpha>;
} {
  const index = indexDescriptors([...served, ...reflectionServices]);
  const impl: ReflectionImpl = {
    async *serverReflectionInfo(requests, ctx) {
      const sent = new Set<string>();
      for await (const req of abortable(requests, ctx.signal)) {
        yield {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(index, req.messageRequest, sent),
        };
      }
    },
  };
  // The v1alpha messages have the same shape and field numbers as v1.
  return { v1: impl, v1alpha: impl as unknown as ServiceImpl<typeof ReflectionV1Alpha> };
}

type Request =
  Parameters<ReflectionImpl["serverReflectionInfo"]>[0] extends AsyncIterable<infer R> ? R : never;

function answer(index: DescriptorIndex, req: Request["messageRequest"], sent: Set<string>) {
  const notFound = (what: string) =>
    ({ case: "errorResponse", value: { errorCode: 5, errorMessage: `${what} not found` } }) as const;
  switch (req.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      } as const;
    case "fileByFilename": {
      const file = index.filesByName.get(req.value);
      return file ? filesResponse(file, sent) : notFound(`file "${req.value}"`);
    }
    case "fileContainingSymbol": {
      const file = index.fileBySymbol.get(req.value.replace(/^\./, ""));
      return file ? filesResponse(file, sent) : notFound(`symbol "${req.value}"`);
    }
    case "fileContainingExtension": {
      const file = index.extensions.get(req.value.containingType)?.get(req.value.extensionNumber);
      return file
        ? filesResponse(file, sent)
        : notFound(`extension ${req.value.extensionNumber} of "${req.value.containingType}"`);
    }
    case "allExtensionNumbersOfType": {
      if (!index.fileBySymbol.has(req.value)) return notFound(`type "${req.value}"`);
      const numbers = [...(index.extensions.get(req.value)?.keys() ?? [])];
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: req.value, extensionNumber: numbers },
      } as const;
    }
    default:
      return {
        case: "errorResponse",
        value: { errorCode: 3, errorMessage: "request has no message_request set" },
      } as const;
  }
}

/** The file and each transitive dependency not yet sent on this stream (the file itself always). */
function filesResponse(file: DescFile, sent: Set<string>) {
  const out: Uint8Array[] = [];
  const visit = (f: DescFile, always: boolean) => {
    if (!always && sent.has(f.proto.name)) return;
    sent.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) visit(dep, false);
  };
  visit(file, true);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } } as const;
}
