/**
 * A workflow as a small graph: one column per layer of depth (see workflow-layout.ts), an arrow
 * from each dependency to what waits on it, and each task a box linking to it that names its state
 * in words (the colour of the box repeats it, never alone). The shown task is marked "this task".
 * It draws what it is given, so it follows the states live as the detail view refreshes them.
 */

import type { Task } from "../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { allStates, shortId, statusClass, statusName } from "../format.js";
import { layoutWorkflow } from "../workflow-layout.js";

const boxW = 184;
const boxH = 50;
const gapX = 44;
const gapY = 14;
const pad = 8;

/** The graph of `tasks` (oldest first), with `currentId` marked. */
export function WorkflowGraph({ tasks, currentId }: { tasks: readonly Task[]; currentId: string }) {
  const layout = layoutWorkflow(tasks);
  const place = new Map(
    layout.nodes.map((n) => [
      n.task.id,
      { x: pad + n.layer * (boxW + gapX), y: pad + n.row * (boxH + gapY) },
    ]),
  );
  const width = pad * 2 + layout.layers * boxW + Math.max(0, layout.layers - 1) * gapX;
  const height = pad * 2 + layout.rows * boxH + Math.max(0, layout.rows - 1) * gapY;
  const completed = new Set(tasks.filter((t) => t.status === TaskStatus.COMPLETED).map((t) => t.id));
  return (
    <figure className="graph">
      <figcaption data-testid="graph-summary">{summary(tasks, layout.layers)}</figcaption>
      <div className="graph-wrap">
        <svg
          width={width}
          height={height}
          viewBox={`0 0 ${width} ${height}`}
          aria-label="Workflow graph"
          data-testid="workflow-graph"
        >
          <defs>
            <marker
              id="graph-arrow"
              viewBox="0 0 10 10"
              refX="9"
              refY="5"
              markerWidth="7"
              markerHeight="7"
              orient="auto"
            >
              <path d="M0,0 L10,5 L0,10 z" className="arrow" />
            </marker>
          </defs>
          {layout.edges.map((e) => {
            const a = place.get(e.from);
            const b = place.get(e.to);
            if (!a || !b) return null;
            const [x1, y1, x2, y2] = [a.x + boxW, a.y + boxH / 2, b.x, b.y + boxH / 2];
            return (
              <path
                key={`${e.from}>${e.to}`}
                d={`M${x1},${y1} C${x1 + gapX / 2},${y1} ${x2 - gapX / 2},${y2} ${x2 - 1},${y2}`}
                className={completed.has(e.from) ? "edge done" : "edge"}
                markerEnd="url(#graph-arrow)"
                data-edge={`${e.from}>${e.to}`}
              />
            );
          })}
          {layout.nodes.map(({ task: t }) => {
            const p = place.get(t.id);
            if (!p) return null;
            const here = t.id === currentId;
            const state = statusName(t.status);
            return (
              <a
                key={t.id}
                href={`#/tasks/${encodeURIComponent(t.id)}`}
                aria-label={`${t.id}: ${state}${here ? ", this task" : ""}`}
                aria-current={here ? "page" : undefined}
                data-testid="graph-node"
                data-task-id={t.id}
                data-status={TaskStatus[t.status]}
              >
                <g
                  className={`node ${statusClass(t.status)}${here ? " current" : ""}`}
                  transform={`translate(${p.x},${p.y})`}
                >
                  <title>{t.id}</title>
                  <rect width={boxW} height={boxH} rx={6} />
                  <text x={10} y={20} className="node-id">
                    {shortId(t.id, 24)}
                  </text>
                  <text x={10} y={39} className="node-status">
                    {state}
                    {here ? " · this task" : ""}
                  </text>
                </g>
              </a>
            );
          })}
        </svg>
      </div>
    </figure>
  );
}

/** "3 tasks in 3 layers: 1 completed, 1 pending, 1 waiting". */
function summary(tasks: readonly Task[], layers: number): string {
  const counts = allStates
    .map((s) => [s, tasks.filter((t) => t.status === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${statusName(s)}`);
  const n = tasks.length;
  return `${n} ${n === 1 ? "task" : "tasks"} in ${layers} ${layers === 1 ? "layer" : "layers"}: ${counts.join(", ")}`;
}
