/**
 * The steps of a play (its Ansible tasks, as its core reported them): number, name, status, run
 * time, the error of a failed step, and each step's output behind a disclosure. Shown by the task
 * detail view, which keeps the task fresh from its events, so the table follows the play live.
 */
import type { TaskStep } from "../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { dateOf, seconds, span, statusName } from "../format.js";

/** The step table of a play; nothing when `steps` is empty. */
export function StepTable({ steps }: { steps: readonly TaskStep[] }) {
  if (steps.length === 0) return null;
  return (
    <section aria-labelledby="steps-title">
      <h2 id="steps-title">Steps</h2>
      <p className="muted" data-testid="steps-recap">
        {recap(steps)}
      </p>
      <div className="table-wrap">
        <table className="steps" aria-labelledby="steps-title" data-testid="steps">
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Duration</th>
              <th scope="col">Error</th>
              <th scope="col">Output</th>
            </tr>
          </thead>
          <tbody>
            {steps.map((s) => (
              <StepRow key={s.number} step={s} />
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function StepRow({ step: s }: { step: TaskStep }) {
  const state = TaskStatus[s.status] ?? String(s.status);
  return (
    <tr
      data-step={s.number}
      data-status={state}
      className={s.status === TaskStatus.FAILED ? "step-failed" : ""}
    >
      <td>{s.number}</td>
      <td className="step-name">{s.name || <span className="muted">(unnamed)</span>}</td>
      <td>
        <span className={`badge st-${state.toLowerCase()}`} data-testid="step-status">
          {statusName(s.status)}
        </span>
      </td>
      <td>{duration(s)}</td>
      <td className="step-error" data-testid="step-error">
        {s.status === TaskStatus.FAILED ? s.error : ""}
      </td>
      <td className="step-output">
        {s.output ? (
          <details>
            <summary>
              Show<span className="sr-only"> output of step {s.number}</span>
            </summary>
            <pre data-testid="step-output">{s.output}</pre>
          </details>
        ) : (
          <span className="muted">-</span>
        )}
      </td>
    </tr>
  );
}

/** The run time of an ended step; how long a running one has been running so far. */
function duration(s: TaskStep): string {
  if (s.status === TaskStatus.RUNNING) {
    const started = dateOf(s.startedAt);
    return started ? span(Date.now() - started.getTime()) : "-";
  }
  return s.duration > 0 ? seconds(s.duration) : "-";
}

/** "4 steps: 2 completed, 1 failed, 1 skipped". */
function recap(steps: readonly TaskStep[]): string {
  const counts = new Map<string, number>();
  for (const s of steps) counts.set(statusName(s.status), (counts.get(statusName(s.status)) ?? 0) + 1);
  const parts = [...counts].map(([name, n]) => `${n} ${name}`);
  return `${steps.length} ${steps.length === 1 ? "step" : "steps"}: ${parts.join(", ")}`;
}
