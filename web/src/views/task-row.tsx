/**
 * One row of the task list: a selection checkbox (for tasks a cancel can still change), the id as a
 * link to the task, its state, type, workflow (a link that filters the list by it), priority,
 * daemon, progress, age and run time.
 */

import type { Task } from "../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { cancelable, dateOf, endedStates, priorityName, shortId, span } from "../format.js";
import { tasksHref } from "../route.js";
import { StatusBadge } from "./status-badge.js";

/** The row of `task`; `onSelect` is called when its checkbox changes. */
export function TaskRow({
  task: t,
  selected,
  onSelect,
}: {
  task: Task;
  selected: boolean;
  onSelect: (id: string, on: boolean) => void;
}) {
  const created = dateOf(t.createdAt);
  const started = dateOf(t.startedAt);
  const ended = dateOf(t.completedAt);
  const pct = Math.max(0, Math.min(100, Math.round(t.progress)));
  const canCancel = cancelable(t.status);
  return (
    <tr data-task-id={t.id} data-status={TaskStatus[t.status]} className={selected ? "selected" : ""}>
      <td className="select">
        <label title={canCancel ? undefined : "This task can no longer be canceled"}>
          <input
            type="checkbox"
            checked={selected && canCancel}
            disabled={!canCancel}
            onChange={(e) => onSelect(t.id, e.target.checked)}
          />
          <span className="sr-only">Select task {t.id}</span>
        </label>
      </td>
      <td>
        <a href={`#/tasks/${encodeURIComponent(t.id)}`} title={t.id}>
          {shortId(t.id)}
        </a>
      </td>
      <td>
        <StatusBadge status={t.status} />
      </td>
      <td>
        {t.type} {t.era === "play" && <span className="chip">play</span>}
      </td>
      <td>
        {t.workflowId ? (
          <a
            href={tasksHref(t.workflowId)}
            title={t.workflowId}
            aria-label={`Filter by workflow ${t.workflowId}`}
            data-testid="workflow-link"
          >
            {shortId(t.workflowId)}
          </a>
        ) : (
          <span className="muted">-</span>
        )}
      </td>
      <td>{priorityName(t.priority)}</td>
      <td>{t.daemonId || t.attempts[t.attempts.length - 1]?.daemonId || "-"}</td>
      <td>
        <progress max={100} value={pct} aria-label={`${pct} %`} />
      </td>
      <td title={created?.toISOString()}>{created ? span(Date.now() - created.getTime()) : "-"}</td>
      <td>
        {started
          ? span((endedStates.has(t.status) && ended ? ended.getTime() : Date.now()) - started.getTime())
          : "-"}
      </td>
    </tr>
  );
}
