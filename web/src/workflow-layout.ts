/**
 * Lays out a task graph by depth: a task none of whose dependencies is in the graph is in layer 0,
 * any other one layer after its deepest dependency, so every edge points to a later layer. Within
 * a layer, tasks keep the order they are given in (oldest first, as the detail view passes them).
 */
import type { Task } from "../../gen/spage/core/common_pb.js";

/** One task's place: its layer (column) and its row within the layer. */
export interface PlacedTask {
  readonly task: Task;
  readonly layer: number;
  readonly row: number;
}

/** The graph laid out. */
export interface WorkflowLayout {
  readonly nodes: readonly PlacedTask[];
  /** Dependency edges between tasks of the graph: `from` must complete before `to` runs. */
  readonly edges: readonly { readonly from: string; readonly to: string }[];
  readonly layers: number;
  /** Rows of the fullest layer. */
  readonly rows: number;
}

/** Lays out `tasks`; dependencies on tasks outside them are left out. */
export function layoutWorkflow(tasks: readonly Task[]): WorkflowLayout {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    // The gateway refuses cycles; should one show up anyway, it is cut here rather than looping.
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let d = 0;
    for (const dep of byId.get(id)?.dependsOn ?? []) if (byId.has(dep)) d = Math.max(d, depthOf(dep) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const perLayer: number[] = [];
  const nodes = tasks.map((task) => {
    const layer = depthOf(task.id);
    const row = perLayer[layer] ?? 0;
    perLayer[layer] = row + 1;
    return { task, layer, row };
  });
  const edges = tasks.flatMap((t) =>
    t.dependsOn.filter((d) => byId.has(d)).map((from) => ({ from, to: t.id })),
  );
  return { nodes, edges, layers: perLayer.length, rows: Math.max(0, ...perLayer) };
}
