/**
 * Batch cancel in the task list: "Cancel selected" cancels the rows ticked on the page by id;
 * "Cancel all matching" first counts what the list's filter matches (CancelTasks with dry_run),
 * asks to confirm that count, then cancels at most that many, 1,000 a call, oldest first. Either
 * way it then says how many were canceled and which could not be, and why.
 */
import { useRef, useState } from "react";
import type { CancelTaskOutcome } from "../../../gen/spage/api/tasks_pb.js";
import { api, describeError } from "../api.js";
import { ConfirmDialog } from "./confirm-dialog.js";
import { describeFilter, filterQuery, type TaskFilterValues } from "./task-filters.js";

/** The most tasks one CancelTasks call may change. */
const maxPerCall = 1000;
/** How many refusals the outcome lists one by one. */
const shownRefusals = 10;
const reason = "canceled from the dashboard";

type Pending =
  | { readonly kind: "selected"; readonly ids: readonly string[] }
  | { readonly kind: "matching"; readonly count: number; readonly filter: TaskFilterValues };

interface Outcome {
  readonly canceled: number;
  readonly refused: readonly CancelTaskOutcome[];
}

const tasks = (n: number) => `${n.toLocaleString()} ${n === 1 ? "task" : "tasks"}`;

/** The batch actions over `selectedIds` and `filter`; `onDone` runs after a cancel. */
export function BatchCancel({
  selectedIds,
  filter,
  onDone,
}: {
  selectedIds: readonly string[];
  filter: TaskFilterValues;
  onDone: () => void;
}) {
  const [pending, setPending] = useState<Pending | undefined>();
  const [busy, setBusy] = useState("");
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const [note, setNote] = useState("");
  const [error, setError] = useState("");
  const selectedButton = useRef<HTMLButtonElement>(null);
  const matchingButton = useRef<HTMLButtonElement>(null);

  const start = (what: string) => {
    setBusy(what);
    setOutcome(undefined);
    setNote("");
    setError("");
  };

  const countMatching = async () => {
    start("Counting matching tasks…");
    try {
      const q = filterQuery(filter);
      const dry = await api.cancelTasks({
        filter: q,
        dryRun: true,
        limit: maxPerCall,
        all: !describeFilter(filter),
      });
      const count = dry.matched + dry.remaining;
      if (count === 0)
        setNote("No task matching the filter can be canceled: none of them is queued or running.");
      else setPending({ kind: "matching", count, filter });
    } catch (err) {
      setError(describeError(err).message);
    } finally {
      setBusy("");
    }
  };

  const cancelSelected = async (ids: readonly string[]) => {
    let canceled = 0;
    const refused: CancelTaskOutcome[] = [];
    for (let i = 0; i < ids.length; i += maxPerCall) {
      const chunk = ids.slice(i, i + maxPerCall);
      const r = await api.cancelTasks({ taskIds: [...chunk], limit: chunk.length, reason });
      canceled += r.canceled;
      refused.push(...r.results.filter((o) => !o.success));
    }
    return { canceled, refused };
  };

  // At most the confirmed count: tasks that started to match after the count are left alone.
  const cancelMatching = async (count: number, f: TaskFilterValues) => {
    const q = filterQuery(f);
    const all = !describeFilter(f);
    let canceled = 0;
    const refused: CancelTaskOutcome[] = [];
    while (canceled + refused.length < count) {
      setBusy(`Canceling… ${canceled.toLocaleString()} of ${count.toLocaleString()}`);
      const limit = Math.min(maxPerCall, count - canceled - refused.length);
      const r = await api.cancelTasks({ filter: q, limit, reason, all });
      canceled += r.canceled;
      refused.push(...r.results.filter((o) => !o.success));
      if (r.matched === 0 || r.remaining === 0) break;
    }
    return { canceled, refused };
  };

  const confirm = async (p: Pending) => {
    setPending(undefined);
    start("Canceling…");
    try {
      setOutcome(
        p.kind === "selected" ? await cancelSelected(p.ids) : await cancelMatching(p.count, p.filter),
      );
      onDone();
    } catch (err) {
      setError(describeError(err).message);
    } finally {
      setBusy("");
    }
  };

  const described = describeFilter(filter);
  return (
    <div className="batch">
      <div className="batch-buttons">
        <button
          ref={selectedButton}
          type="button"
          className="danger"
          disabled={selectedIds.length === 0 || busy !== ""}
          onClick={() => setPending({ kind: "selected", ids: selectedIds })}
        >
          Cancel selected ({selectedIds.length})
        </button>
        <button
          ref={matchingButton}
          type="button"
          className="danger"
          disabled={busy !== ""}
          onClick={countMatching}
          title={described ? `Cancel every queued or running task with ${described}` : "No filter is set"}
        >
          Cancel all matching…
        </button>
        {busy && (
          <span role="status" className="muted">
            {busy}
          </span>
        )}
      </div>
      {pending?.kind === "selected" && (
        <ConfirmDialog
          label="Confirm cancel"
          confirmLabel={`Yes, cancel ${tasks(pending.ids.length)}`}
          keepLabel="Keep them"
          onConfirm={() => confirm(pending)}
          onKeep={() => setPending(undefined)}
          returnTo={selectedButton}
        >
          Cancel {tasks(pending.ids.length)} selected?
        </ConfirmDialog>
      )}
      {pending?.kind === "matching" && (
        <ConfirmDialog
          label="Confirm cancel"
          confirmLabel={`Yes, cancel ${tasks(pending.count)}`}
          keepLabel="Keep them"
          onConfirm={() => confirm(pending)}
          onKeep={() => setPending(undefined)}
          returnTo={matchingButton}
        >
          <span data-testid="cancel-count">{tasks(pending.count)}</span>{" "}
          {describeFilter(pending.filter)
            ? `match ${describeFilter(pending.filter)} and have not ended. Cancel them?`
            : "have not ended, and no filter is set: this cancels every one of them. Cancel them?"}
        </ConfirmDialog>
      )}
      <div aria-live="polite" data-testid="batch-result">
        {note && <p className="muted">{note}</p>}
        {outcome && <OutcomeText outcome={outcome} />}
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </div>
  );
}

function OutcomeText({ outcome: o }: { outcome: Outcome }) {
  const more = o.refused.length - shownRefusals;
  return (
    <>
      <p>
        Canceled {tasks(o.canceled)}.
        {o.refused.length > 0 && ` ${tasks(o.refused.length)} could not be canceled:`}
      </p>
      {o.refused.length > 0 && (
        <ul className="refusals">
          {o.refused.slice(0, shownRefusals).map((r) => (
            <li key={r.taskId}>
              <a href={`#/tasks/${encodeURIComponent(r.taskId)}`}>{r.taskId}</a>: {r.error}
            </li>
          ))}
          {more > 0 && <li>and {tasks(more)} more</li>}
        </ul>
      )}
    </>
  );
}
