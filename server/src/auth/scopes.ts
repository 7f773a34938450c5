/**
 * Scopes and the one table of what each RPC needs. Every method served on the port is listed; the
 * auth interceptor refuses a method missing from the table, so a new RPC cannot slip in unguarded.
 */

/** Every scope a key can hold. */
export const allScopes = [
  "tasks:read",
  "tasks:write",
  "tasks:cancel",
  "agent",
  "execution",
  "admin",
] as const;

/** One scope. */
export type Scope = (typeof allScopes)[number];

/** What a method needs: nothing, any valid credentials, or one of the listed scopes. */
export type Requirement = { readonly kind: "public" } | { readonly kind: "authenticated" } | Needs;

/** One of `scopes` is enough. */
export interface Needs {
  readonly kind: "scope";
  readonly scopes: readonly Scope[];
  /**
   * A Spage core without credentials may call it too, where the anonymous-execution policy lets
   * it in, and then only for its own runs (domain/task-owner.ts).
   */
  readonly anonymousCore?: boolean;
}

const pub: Requirement = { kind: "public" };
const any: Requirement = { kind: "authenticated" };
const needs = (...scopes: Scope[]): Requirement => ({ kind: "scope", scopes });
const coreOrNeeds = (...scopes: Scope[]): Requirement => ({ kind: "scope", scopes, anonymousCore: true });

/** Requirement of every method, by `<service type name>/<method name>`. */
export const methodRequirements: ReadonlyMap<string, Requirement> = new Map<string, Requirement>([
  ["spage.api.SpageAPI/SubmitTask", needs("tasks:write")],
  ["spage.api.SpageAPI/GetTaskStatus", needs("tasks:read")],
  ["spage.api.SpageAPI/CancelTask", needs("tasks:cancel")],
  ["spage.api.SpageAPI/ListTasks", needs("tasks:read")],
  ["spage.api.SpageAPI/StreamEvents", needs("agent")],
  ["spage.api.SpageAPI/Authenticate", pub],
  ["spage.api.SpageAPI/ValidateToken", any],
  ["spage.api.SpageAPI/HealthCheck", pub],
  ["spage.api.SpageAPI/GetMetrics", needs("tasks:read")],
  ["spage.api.SpageAPI/WatchEvents", needs("tasks:read")],
  ["spage.api.SpageAPI/ReportTaskResult", needs("agent", "execution")],
  ["spage.api.SpageAPI/ListDaemons", needs("tasks:read")],
  ["spage.api.SpageAPI/CreateApiKey", needs("admin")],
  ["spage.api.SpageAPI/ListApiKeys", needs("admin")],
  ["spage.api.SpageAPI/RevokeApiKey", needs("admin")],
  ["spage.api.SpageAPI/RevokeToken", any],
  ["spage.api.SpageAPI/RevokePersonSessions", needs("admin")],
  ["spage.api.SpageAPI/ListAuditEvents", needs("admin")],
  // Batches need what the single calls they stand for need.
  ["spage.api.SpageAPI/SubmitTasks", needs("tasks:write")],
  ["spage.api.SpageAPI/CancelTasks", needs("tasks:cancel")],
  ["spage.api.SpageAPI/RetryTask", needs("tasks:write")],
  ["spage.core.SpageExecution/ExecuteTask", needs("execution")],
  ["spage.core.SpageExecution/GetTaskStatus", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/CancelTask", needs("execution", "tasks:cancel")],
  ["spage.core.SpageExecution/StreamProgress", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/RegisterTask", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/HealthCheck", pub],
  ["spage.core.SpageExecution/GetMetrics", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/ExecutePlay", needs("execution")],
  ["spage.core.SpageExecution/CancelPlay", needs("execution", "tasks:cancel")],
  ["spage.core.SpageExecution/GetPlayStatus", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/RegisterPlay", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/RegisterPlayCompletion", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/StreamTaskProgress", coreOrNeeds("execution")],
  ["spage.core.SpageExecution/StreamPlayProgress", coreOrNeeds("execution")],
  ["grpc.health.v1.Health/Check", pub],
  ["grpc.health.v1.Health/Watch", pub],
  ["grpc.health.v1.Health/List", pub],
  ["grpc.reflection.v1.ServerReflection/ServerReflectionInfo", pub],
  ["grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", pub],
]);

const byMethod = new WeakMap<object, Requirement | null>();

/**
 * The requirement of a method, by its descriptor: the table is read once per method, not once per
 * call. Undefined for a method missing from the table.
 */
export function requirementOf(
  serviceTypeName: string,
  method: { readonly name: string },
): Requirement | undefined {
  let r = byMethod.get(method);
  if (r === undefined) {
    r = methodRequirements.get(`${serviceTypeName}/${method.name}`) ?? null;
    byMethod.set(method, r);
  }
  return r ?? undefined;
}

/** True for a known scope name. */
export function isScope(s: string): s is Scope {
  return (allScopes as readonly string[]).includes(s);
}
