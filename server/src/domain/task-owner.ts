/**
 * Who owns a task, and what a caller without credentials may do with it. A task records its owner
 * when it is created (Task.owner): "key:<id>" for an API key or a session made from one,
 * "anonymous@<address>" for a Spage core let in without credentials, "open" when auth is off.
 * Spage cores send no credentials, so SpageExecution lets them in anonymously where the policy
 * allows; such a caller may only report its own runs: register a new one, re-register and stream
 * progress of runs an anonymous core registered, and read those. Everything else about a task
 * needs credentials.
 */
import { PermissionDeniedError } from "./errors.js";

/** The caller of a task operation, as ownership sees it. */
export interface Actor {
  /** The owner a task this caller creates records. */
  readonly owner: string;
  /** Let in without credentials: may only touch runs an anonymous core registered. */
  readonly anonymous: boolean;
}

/** The rule an anonymous caller is held to, named in every refusal. */
export const anonymousRule =
  "callers without credentials may only report runs an anonymous Spage core registered";

/** The owner an anonymous core at `address` records. */
export function anonymousOwner(address: string): string {
  return address ? `anonymous@${address}` : "anonymous";
}

/** Whether a task's owner is an anonymous core. */
export function isAnonymousOwner(owner: string): boolean {
  return owner === "anonymous" || owner.startsWith("anonymous@");
}

/**
 * Refuses `actor` touching `task` when the actor came without credentials and the task is not an
 * anonymous core's run. `doing` says what was attempted, e.g. "re-register".
 */
export function checkOwnerAccess(
  actor: Actor | undefined,
  task: { readonly id: string; readonly owner: string },
  doing: string,
): void {
  if (!actor?.anonymous || isAnonymousOwner(task.owner)) return;
  throw new PermissionDeniedError(
    `cannot ${doing} task ${task.id} without credentials: ${anonymousRule}; send a key or token with scope "execution"`,
    { task_id: task.id, rule: "anonymous-own-runs" },
  );
}
