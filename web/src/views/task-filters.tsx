/**
 * The task list's filters: state, type, priority, id prefix, workflow and metadata label. The same
 * values filter the listing (ListTasks) and name the tasks "Cancel all matching" cancels
 * (CancelTasks with a TaskFilter).
 */
import { type ReactElement, useId } from "react";
import { TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { allStates, priorityName, statusName } from "../format.js";

const priorities = [TaskPriority.LOW, TaskPriority.NORMAL, TaskPriority.HIGH, TaskPriority.CRITICAL];

/** The filter values, as typed (trimmed where they are used). */
export interface TaskFilterValues {
  /** A state's enum name (e.g. "WAITING"), or empty for any. */
  readonly status: string;
  readonly type: string;
  /** A TaskPriority, or 0 for any. */
  readonly priority: number;
  /** Id prefix. */
  readonly text: string;
  readonly workflow: string;
  /** "key=value". */
  readonly label: string;
}

/** No filter at all. */
export const noFilter: TaskFilterValues = {
  status: "",
  type: "",
  priority: 0,
  text: "",
  workflow: "",
  label: "",
};

/** The filter as the calls take it. */
export function filterQuery(f: TaskFilterValues) {
  return {
    status: f.status,
    type: f.type.trim(),
    priority: f.priority,
    idPrefix: f.text.trim(),
    workflowId: f.workflow.trim(),
    label: f.label.trim(),
  };
}

/** The filter in words, e.g. "state pending, label rollout=r1"; empty when nothing is set. */
export function describeFilter(f: TaskFilterValues): string {
  const q = filterQuery(f);
  const parts: string[] = [];
  if (q.status) parts.push(`state ${statusName(TaskStatus[q.status as keyof typeof TaskStatus])}`);
  if (q.type) parts.push(`type ${q.type}`);
  if (q.priority) parts.push(`priority ${priorityName(q.priority)}`);
  if (q.idPrefix) parts.push(`id starting with ${q.idPrefix}`);
  if (q.workflowId) parts.push(`workflow ${q.workflowId}`);
  if (q.label) parts.push(`label ${q.label}`);
  return parts.join(", ");
}

/** The filter form; `onChange` gets what changed. */
export function TaskFilters({
  filter,
  onChange,
}: {
  filter: TaskFilterValues;
  onChange: (patch: Partial<TaskFilterValues>) => void;
}) {
  return (
    <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter tasks">
      <Field label="Status">
        {(id) => (
          <select id={id} value={filter.status} onChange={(e) => onChange({ status: e.target.value })}>
            <option value="">any</option>
            {allStates.map((s) => (
              <option key={s} value={TaskStatus[s]}>
                {statusName(s)}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Type">
        {(id) => (
          <input
            id={id}
            value={filter.type}
            onChange={(e) => onChange({ type: e.target.value })}
            placeholder="any"
          />
        )}
      </Field>
      <Field label="Priority">
        {(id) => (
          <select
            id={id}
            value={filter.priority}
            onChange={(e) => onChange({ priority: Number(e.target.value) })}
          >
            <option value={0}>any</option>
            {priorities.map((p) => (
              <option key={p} value={p}>
                {priorityName(p)}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Id starts with">
        {(id) => (
          <input
            id={id}
            value={filter.text}
            onChange={(e) => onChange({ text: e.target.value })}
            placeholder="id"
          />
        )}
      </Field>
      <Field label="Workflow">
        {(id) => (
          <input
            id={id}
            name="workflow"
            value={filter.workflow}
            onChange={(e) => onChange({ workflow: e.target.value })}
            placeholder="any"
          />
        )}
      </Field>
      <Field label="Label">
        {(id) => (
          <input
            id={id}
            name="label"
            value={filter.label}
            onChange={(e) => onChange({ label: e.target.value })}
            placeholder="key=value"
          />
        )}
      </Field>
    </form>
  );
}

// The label names its control by id rather than by wrapping it: a wrapped <select> would add its
// chosen option to its name ("Status any").
function Field({ label, children }: { label: string; children: (id: string) => ReactElement }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children(id)}
    </div>
  );
}
