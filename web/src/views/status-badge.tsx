/** A task state as a badge: its name as text, its colour as a second cue only. */
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { statusClass, statusName } from "../format.js";

/** The badge of `status`; "unknown" while the state is not known yet. */
export function StatusBadge({ status, testId }: { status: TaskStatus | undefined; testId?: string }) {
  if (status === undefined) return <span className="badge muted">unknown</span>;
  return (
    <span className={`badge ${statusClass(status)}`} data-testid={testId} data-status={TaskStatus[status]}>
      {statusName(status)}
    </span>
  );
}
