/**
 * How a task is linked to others, in its detail view: its workflow (a link to the list filtered by
 * it), the tasks it depends on and those depending on it, the task it retries and its retries,
 * each a link with its live state, and the graph of the workflow (or, for a workflow too big to
 * draw, of the task and its direct neighbours).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Task } from "../../../gen/spage/core/common_pb.js";
import { shortId } from "../format.js";
import { maxWorkflowTasks, type RelatedTasks } from "../related-tasks.js";
import { tasksHref } from "../route.js";
import { StatusBadge } from "./status-badge.js";
import { WorkflowGraph } from "./workflow-graph.js";

/** The links of `task`; nothing when it has none. */
export function TaskRelations({
  task,
  related,
  retryIds,
}: {
  task: Task;
  related: RelatedTasks;
  retryIds: readonly string[];
}) {
  const { byId } = related;
  const wf = task.workflowId;
  if (
    !wf &&
    task.dependsOn.length === 0 &&
    task.dependents.length === 0 &&
    !task.retryOf &&
    retryIds.length === 0
  )
    return null;
  const nodes = graphTasks(task, related);
  return (
    <section aria-labelledby="relations-title" data-testid="relations">
      <h2 id="relations-title">{wf ? "Workflow" : "Linked tasks"}</h2>
      <dl className="summary">
        {wf && (
          <>
            <dt>Workflow</dt>
            <dd>
              <a href={tasksHref(wf)} aria-label={`Filter by workflow ${wf}`} data-testid="workflow-link">
                {wf}
              </a>
              {related.workflowTotal > 0 && (
                <span className="muted">
                  {" "}
                  ({related.workflowTotal.toLocaleString()} {related.workflowTotal === 1 ? "task" : "tasks"})
                </span>
              )}
            </dd>
          </>
        )}
        {/* In a workflow, "none" is worth saying; a lone retry just leaves the rows out. */}
        <TaskLinks
          title="Depends on"
          ids={task.dependsOn}
          byId={byId}
          testId="depends-on"
          none={wf && "nothing"}
        />
        <TaskLinks
          title="Dependents"
          ids={task.dependents}
          byId={byId}
          testId="dependents"
          none={wf && "none"}
        />
        {task.retryOf && <TaskLinks title="Retry of" ids={[task.retryOf]} byId={byId} testId="retry-of" />}
        {retryIds.length > 0 && <TaskLinks title="Retried as" ids={retryIds} byId={byId} testId="retries" />}
      </dl>
      {nodes.length > 1 && (
        <>
          {wf && !related.wholeWorkflow && related.workflowTotal > maxWorkflowTasks && (
            <p className="muted">
              The workflow is too big to draw; the graph shows this task and its direct dependencies and
              dependents.
            </p>
          )}
          <WorkflowGraph tasks={nodes} currentId={task.id} />
        </>
      )}
    </section>
  );
}

function TaskLinks({
  title,
  ids,
  byId,
  testId,
  none,
}: {
  title: string;
  ids: readonly string[];
  byId: ReadonlyMap<string, Task>;
  testId: string;
  none?: string;
}) {
  if (ids.length === 0 && !none) return null;
  return (
    <>
      <dt>{title}</dt>
      <dd>
        {ids.length === 0 ? (
          <span className="muted">{none}</span>
        ) : (
          <ul className="task-links" data-testid={testId} aria-label={title}>
            {ids.map((id) => (
              <li key={id} data-task-id={id}>
                <a href={`#/tasks/${encodeURIComponent(id)}`} title={id}>
                  {shortId(id, 28)}
                </a>{" "}
                <StatusBadge status={byId.get(id)?.status} />
              </li>
            ))}
          </ul>
        )}
      </dd>
    </>
  );
}

/** The tasks the graph draws, oldest first, with the shown task as the detail view has it. */
function graphTasks(task: Task, related: RelatedTasks): Task[] {
  const chosen = new Map<string, Task>();
  if (related.wholeWorkflow) {
    for (const t of related.byId.values()) if (t.workflowId === task.workflowId) chosen.set(t.id, t);
  }
  for (const id of [...task.dependsOn, ...task.dependents]) {
    const t = related.byId.get(id);
    if (t) chosen.set(id, t);
  }
  chosen.set(task.id, task);
  const created = (t: Task) => (t.createdAt ? timestampMs(t.createdAt) : 0);
  return [...chosen.values()].sort((a, b) => created(a) - created(b) || a.id.localeCompare(b.id));
}
