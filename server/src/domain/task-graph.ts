/**
 * Task dependencies: the limits, the checks of a submitted graph (unknown ids, repeats, cycles,
 * depth) and the one decision of what a WAITING task becomes given its dependencies' states.
 *
 * | dependencies                              | the waiting task becomes                 |
 * | ----------------------------------------- | ---------------------------------------- |
 * | all COMPLETED                             | PENDING (queued)                          |
 * | one CANCELED                              | CANCELED, error naming it                |
 * | one FAILED, TIMED_OUT or SKIPPED          | SKIPPED, error naming it                 |
 * | otherwise (some not ended yet)            | stays WAITING                            |
 *
 * A missing dependency (it cannot be deleted, but a copied store may lack it) counts as SKIPPED.
 */
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { statusName, terminalStates } from "./task-state.js";
import { checkTaskId, isTaskId, type Violations } from "./task-validation.js";

/** Bounds of dependency graphs. */
export const graphLimits = {
  /** Tasks in one SubmitTasks call. */
  maxBatch: 1000,
  /** Dependencies of one task. */
  maxDependencies: 100,
  /** Longest chain of dependencies below a task. */
  maxDepth: 1000,
} as const;

/** What a node of a submitted graph says about itself. */
export interface GraphNode {
  /** Its id (given or generated). */
  readonly id: string;
  readonly dependsOn: readonly string[];
}

/**
 * Checks the dependencies of `nodes` (the tasks of one request, in order): each given once, none on
 * itself, each an id of the request or one of `stored` (id -> depth), no cycle among the request's
 * tasks. Violations name `<prefix>[i].depends_on`. Returns each node's depth (longest chain below
 * it); nodes on a cycle are left out.
 */
export function checkGraph(
  v: Violations,
  prefix: string,
  nodes: readonly GraphNode[],
  stored: ReadonlyMap<string, number>,
): Map<string, number> {
  const field = (i: number) => (prefix ? `${prefix}[${i}].depends_on` : "depends_on");
  const index = new Map<string, number>();
  nodes.forEach((n, i) => {
    index.set(n.id, i);
  });
  let ok = true;
  nodes.forEach((n, i) => {
    if (n.dependsOn.length > graphLimits.maxDependencies) {
      v.add(field(i), `at most ${graphLimits.maxDependencies} dependencies (got ${n.dependsOn.length})`);
      ok = false;
      return;
    }
    const seen = new Set<string>();
    for (const dep of n.dependsOn) {
      if (!isTaskId(dep)) {
        checkTaskId(v, field(i), dep, true);
        ok = false;
        continue;
      }
      if (seen.has(dep)) {
        v.add(field(i), `${dep} is named twice`);
        ok = false;
      } else if (dep === n.id) {
        v.add(field(i), `${dep} cannot depend on itself`);
        ok = false;
      } else if (!index.has(dep) && !stored.has(dep)) {
        v.add(field(i), `${dep} is not a stored task nor one of this request`);
        ok = false;
      }
      seen.add(dep);
    }
  });
  const depth = new Map<string, number>();
  if (!ok) return depth;
  // Depth first over the request's tasks; a node met again while on the path closes a cycle.
  const state = new Map<string, "open" | "done">();
  const visit = (id: string, path: string[]): number | undefined => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    const stDepth = stored.get(id);
    if (!index.has(id)) return stDepth ?? 0;
    if (state.get(id) === "open") {
      const cycle = [...path.slice(path.indexOf(id)), id];
      v.add(field(index.get(id) as number), `${id} is on a cycle: ${cycle.join(" -> ")}`);
      return undefined;
    }
    state.set(id, "open");
    path.push(id);
    let d = 0;
    const node = nodes[index.get(id) as number] as GraphNode;
    for (const dep of node.dependsOn) {
      const below = visit(dep, path);
      if (below === undefined) {
        path.pop();
        return undefined;
      }
      d = Math.max(d, below + 1);
    }
    path.pop();
    state.set(id, "done");
    depth.set(id, d);
    return d;
  };
  for (const n of nodes) {
    if (state.get(n.id) === "done") continue;
    if (visit(n.id, []) === undefined) return depth;
  }
  nodes.forEach((n, i) => {
    const d = depth.get(n.id) ?? 0;
    if (d > graphLimits.maxDepth)
      v.add(field(i), `a chain of dependencies at most ${graphLimits.maxDepth} deep (this one is ${d})`);
  });
  return depth;
}

/** What a WAITING task becomes: stays waiting, queued, or ended because of one dependency. */
export type DependencyOutcome =
  | { readonly kind: "wait" }
  | { readonly kind: "ready" }
  | {
      readonly kind: "end";
      readonly to: TaskStatus.CANCELED | TaskStatus.SKIPPED;
      readonly cause: string;
      readonly causeStatus: string;
      readonly error: string;
    };

/** The decision of the table above, for a task waiting on `dependsOn` with these states. */
export function dependencyOutcome(
  dependsOn: readonly string[],
  states: ReadonlyMap<string, TaskStatus>,
): DependencyOutcome {
  let waiting = false;
  for (const id of dependsOn) {
    const status = states.get(id) ?? TaskStatus.SKIPPED;
    if (status === TaskStatus.COMPLETED) continue;
    if (!terminalStates.has(status)) {
      waiting = true;
      continue;
    }
    const to = status === TaskStatus.CANCELED ? TaskStatus.CANCELED : TaskStatus.SKIPPED;
    const name = states.has(id) ? statusName(status) : "missing";
    return {
      kind: "end",
      to,
      cause: id,
      causeStatus: name,
      error: `dependency ${id} ended ${name}`,
    };
  }
  return waiting ? { kind: "wait" } : { kind: "ready" };
}
