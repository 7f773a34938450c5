/**
 * The name logs and audit records give a method, `<service type name>/<method name>`, made once per
 * method descriptor rather than once per call.
 */
import type { DescMethod } from "@bufbuild/protobuf";

const names = new WeakMap<DescMethod, string>();

/** `spage.api.SpageAPI/GetTaskStatus` for that method. */
export function rpcNameOf(method: DescMethod): string {
  let name = names.get(method);
  if (name === undefined) {
    name = `${method.parent.typeName}/${method.name}`;
    names.set(method, name);
  }
  return name;
}
