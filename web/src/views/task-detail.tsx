/**
 * One task: its state and times, its workflow, dependencies, dependents and retries with their
 * live states and the workflow's graph, a timeline of state changes, per-host results like
 * Ansible's recap, a play's steps, the live output log (follows new lines; can be paused), the
 * result map and error, Cancel with confirmation, and Retry once it has ended. Replays the task's
 * events from the start, then follows them live; every event of the task refreshes it
 * (TaskRefresher), which is how the hosts and steps tables follow a run. The linked tasks follow
 * the dashboard's stream (related-tasks.ts).
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { Event, Task } from "../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { api, describeError } from "../api.js";
import { clock, dateOf, endedStates, priorityName, span } from "../format.js";
import { useTick } from "../hooks.js";
import { LiveEvents } from "../live-events.js";
import { useRelatedTasks } from "../related-tasks.js";
import { TaskRefresher } from "../task-refresher.js";
import { RetryActions } from "./retry-actions.js";
import { StatusBadge } from "./status-badge.js";
import { StepTable } from "./step-table.js";
import { TaskRelations } from "./task-relations.js";

const maxOutputLines = 5000;
/** Events the timeline leaves out: output lines, progress and step updates show elsewhere. */
const notInTimeline: ReadonlySet<string> = new Set(["task.output", "task.progress", "task.step"]);

interface OutputLine {
  readonly key: string;
  readonly stream: string;
  readonly text: string;
}

/** The detail view of `taskId`. */
export function TaskDetail({ taskId }: { taskId: string }) {
  const [task, setTask] = useState<Task | undefined>();
  const [error, setError] = useState("");
  const [history, setHistory] = useState<Event[]>([]);
  const [lines, setLines] = useState<OutputLine[]>([]);
  const seen = useRef(0n);
  // Which task is shown, and the event log position its shown state reflects: answers about
  // another task (one navigated away from) or older than what is shown are dropped.
  const current = useRef(taskId);
  const shownSequence = useRef(-1n);
  useTick(1000);

  const add = useCallback(
    (events: readonly Event[]) => {
      const mine = events.filter((e) => e.taskId === taskId && e.sequence > seen.current);
      if (mine.length === 0) return;
      seen.current = mine[mine.length - 1]?.sequence ?? seen.current;
      const statusEvents = mine.filter((e) => !notInTimeline.has(e.type));
      if (statusEvents.length > 0) setHistory((h) => [...h, ...statusEvents]);
      const out: OutputLine[] = [];
      for (const e of mine) {
        if (e.type !== "task.output") continue;
        const stream = e.data.stream ?? "stdout";
        (e.data.line ?? "").split("\n").forEach((text, i) => {
          out.push({ key: `${e.sequence}-${i}`, stream, text });
        });
      }
      if (out.length > 0) setLines((l) => [...l, ...out].slice(-maxOutputLines));
    },
    [taskId],
  );

  const show = useCallback((t: Task, sequence: bigint) => {
    if (t.id !== current.current || sequence < shownSequence.current) return;
    shownSequence.current = sequence;
    setTask(t);
  }, []);
  const refresher = useMemo(() => new TaskRefresher(show, 50), [show]);
  useEffect(() => () => refresher.dispose(), [refresher]);

  // The task, then its events from the first one on, live (replayed, then followed).
  useEffect(() => {
    seen.current = 0n;
    current.current = taskId;
    shownSequence.current = -1n;
    setHistory([]);
    setLines([]);
    setTask(undefined);
    setError("");
    const abort = new AbortController();
    api.getTaskStatus({ taskId }, { signal: abort.signal }).then(
      (r) => r.task && show(r.task, r.sequence),
      (err: unknown) => {
        if (!abort.signal.aborted) setError(describeError(err).message);
      },
    );
    const stream = new LiveEvents(taskId);
    const off = stream.onEvents((events) => {
      add(events);
      refresher.touch(taskId);
    });
    stream.start(0n);
    return () => {
      abort.abort();
      off();
      stream.stop();
    };
  }, [taskId, refresher, add, show]);

  const retryIdsKey = history
    .filter((e) => e.type === "task.retried" && e.data.retry_id)
    .map((e) => e.data.retry_id)
    .join(",");
  const retryIds = useMemo(() => (retryIdsKey ? retryIdsKey.split(",") : []), [retryIdsKey]);
  const refreshSelf = useCallback(() => refresher.touch(taskId), [refresher, taskId]);
  const related = useRelatedTasks(task?.id === taskId ? task : undefined, retryIds, refreshSelf);

  if (error) {
    return (
      <section>
        <p role="alert" className="error">
          {error}
        </p>
        <a href="#/tasks">Back to tasks</a>
      </section>
    );
  }
  if (!task) return <p className="muted">Loading…</p>;
  return (
    <section aria-labelledby="task-title" className="detail">
      <p>
        <a href="#/tasks">← Tasks</a>
      </p>
      <h1 id="task-title">
        Task <code>{task.id}</code>
      </h1>
      <Summary task={task} />
      <CancelButton task={task} />
      <RetryActions task={task} />
      <TaskRelations task={task} related={related} retryIds={retryIds} />
      <Hosts task={task} />
      <StepTable steps={task.steps} />
      <Timeline events={history} />
      {/* A play's output is per step, in the step table; its core sends no output lines. */}
      {(task.era !== "play" || lines.length > 0) && <OutputLog lines={lines} />}
      <Result task={task} />
    </section>
  );
}

function Summary({ task: t }: { task: Task }) {
  const created = dateOf(t.createdAt);
  const started = dateOf(t.startedAt);
  const ended = dateOf(t.completedAt);
  const pct = Math.max(0, Math.min(100, Math.round(t.progress)));
  return (
    <dl className="summary">
      <dt>Status</dt>
      <dd>
        <StatusBadge status={t.status} testId="task-status" />
      </dd>
      <dt>Type</dt>
      <dd>
        {t.type} {t.era === "play" && <span className="chip">play</span>}
      </dd>
      <dt>Priority</dt>
      <dd>{priorityName(t.priority)}</dd>
      <dt>Daemon</dt>
      <dd>{t.daemonId || t.attempts[t.attempts.length - 1]?.daemonId || "-"}</dd>
      <dt>Progress</dt>
      <dd>
        <progress max={100} value={pct} /> {pct} %
      </dd>
      <dt>Created</dt>
      <dd>{created ? `${clock(created)} (${span(Date.now() - created.getTime())} ago)` : "-"}</dd>
      <dt>Duration</dt>
      <dd>
        {started
          ? span((endedStates.has(t.status) && ended ? ended.getTime() : Date.now()) - started.getTime())
          : "-"}
      </dd>
      {t.limitHosts.length > 0 && (
        <>
          <dt>Limited to hosts</dt>
          <dd data-testid="limit-hosts">{t.limitHosts.join(", ")}</dd>
        </>
      )}
      {t.payload.playbook && (
        <>
          <dt>Playbook</dt>
          <dd>{t.payload.playbook}</dd>
        </>
      )}
    </dl>
  );
}

function CancelButton({ task }: { task: Task }) {
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState("");
  if (endedStates.has(task.status) || task.status === TaskStatus.CANCELING) return null;
  const cancel = async () => {
    setConfirm(false);
    try {
      await api.cancelTask({ taskId: task.id, reason: "canceled from the dashboard" });
    } catch (err) {
      setError(describeError(err).message);
    }
  };
  return (
    <div className="actions">
      {confirm ? (
        <div role="alertdialog" aria-label="Confirm cancel" className="confirm">
          <span>Cancel this task?</span>
          <button type="button" className="danger" onClick={cancel}>
            Yes, cancel it
          </button>
          <button type="button" onClick={() => setConfirm(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" className="danger" onClick={() => setConfirm(true)}>
          Cancel task
        </button>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </div>
  );
}

function Hosts({ task }: { task: Task }) {
  if (task.hosts.length === 0) return null;
  return (
    <section aria-labelledby="hosts-title">
      <h2 id="hosts-title">Hosts</h2>
      <div className="table-wrap">
        <table className="hosts">
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">ok</th>
              <th scope="col">failed</th>
              <th scope="col">skipped</th>
              <th scope="col">running</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {task.hosts.map((h) => (
              <tr key={h.host} data-host={h.host} className={h.failed > 0 ? "host-failed" : ""}>
                <td>{h.host}</td>
                <td>{h.ok}</td>
                <td>{h.failed}</td>
                <td>{h.skipped}</td>
                <td>{h.running}</td>
                <td>{h.lastError ? `${h.failedTask ? `${h.failedTask}: ` : ""}${h.lastError}` : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Timeline({ events }: { events: readonly Event[] }) {
  return (
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">Timeline</h2>
      <ol className="timeline">
        {events.map((e) => (
          <li key={String(e.sequence)} data-type={e.type}>
            <time>{clock(dateOf(e.timestamp))}</time> <strong>{e.type.replace("task.", "")}</strong>{" "}
            {e.type === "task.status"
              ? `${(e.data.from ?? "").toLowerCase()} → ${(e.data.to ?? "").toLowerCase()}${e.data.reason ? ` (${e.data.reason})` : ""}${e.data.error ? `: ${e.data.error}` : ""}`
              : Object.entries(e.data)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(" ")}
          </li>
        ))}
      </ol>
    </section>
  );
}

function OutputLog({ lines }: { lines: readonly OutputLine[] }) {
  const [paused, setPaused] = useState(false);
  const [frozen, setFrozen] = useState<readonly OutputLine[]>([]);
  const box = useRef<HTMLDivElement>(null);
  const shown = paused ? frozen : lines;
  // biome-ignore lint/correctness/useExhaustiveDependencies: follows each new line.
  useEffect(() => {
    if (!paused && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown, paused]);
  return (
    <section aria-labelledby="output-title">
      <h2 id="output-title">
        Output{" "}
        <button
          type="button"
          onClick={() => {
            setFrozen(lines);
            setPaused((p) => !p);
          }}
          aria-pressed={paused}
        >
          {paused ? `Resume (${lines.length - frozen.length} new)` : "Pause"}
        </button>
      </h2>
      <div className="output" ref={box} role="log" aria-label="Output log" data-testid="output">
        {shown.length === 0 ? (
          <span className="muted">No output yet.</span>
        ) : (
          shown.map((l) => (
            <div key={l.key} className={l.stream === "stderr" ? "stderr" : ""}>
              {l.text}
            </div>
          ))
        )}
      </div>
    </section>
  );
}

function Result({ task }: { task: Task }) {
  const entries = Object.entries(task.result);
  if (entries.length === 0 && !task.error) return null;
  return (
    <section aria-labelledby="result-title">
      <h2 id="result-title">Result</h2>
      {task.error && (
        <p className="error" data-testid="task-error">
          {task.error}
        </p>
      )}
      <dl className="result">
        {entries.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}
