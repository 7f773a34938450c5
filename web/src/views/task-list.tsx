/**
 * The task list: filters (status, type, priority, id prefix), paging, and live updates. Rows of
 * tasks the page shows are refreshed from their events; a new task appears on the first page
 * (newest first) as soon as it is submitted or a core registers a run of its own. A play (a run
 * of a Spage core of today) carries a "play" marker; listings do not carry its steps, and its
 * progress is the share of the steps seen so far that have ended.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { Task } from "../../../gen/spage/core/common_pb.js";
import { TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { api, describeError } from "../api.js";
import { dateOf, endedStates, priorityName, span, statusName } from "../format.js";
import { useLiveEvents, useTick } from "../hooks.js";
import { live } from "../live-events.js";
import { TaskRefresher } from "../task-refresher.js";

const pageSize = 50;
const statuses = [
  TaskStatus.PENDING,
  TaskStatus.ASSIGNED,
  TaskStatus.RUNNING,
  TaskStatus.CANCELING,
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELED,
  TaskStatus.TIMED_OUT,
  TaskStatus.LOST,
];
const priorities = [TaskPriority.LOW, TaskPriority.NORMAL, TaskPriority.HIGH, TaskPriority.CRITICAL];

interface Filter {
  status: string;
  type: string;
  priority: number;
  text: string;
}

/** The list view. */
export function TaskList() {
  const [filter, setFilter] = useState<Filter>({ status: "", type: "", priority: 0, text: "" });
  const [tokens, setTokens] = useState<string[]>([""]);
  const [rows, setRows] = useState<Task[]>([]);
  const [total, setTotal] = useState(0);
  const [next, setNext] = useState("");
  const [error, setError] = useState("");
  const [loaded, setLoaded] = useState(false);
  const pageToken = tokens[tokens.length - 1] ?? "";
  useTick(5000);

  // Answers can arrive out of order: only the latest request's answer is shown.
  const latest = useRef(0);
  // The sequence the shown page reflects: if the live stream starts after it, what happened in
  // between would be missed, so the page is loaded again.
  const pageSequence = useRef<bigint | undefined>(undefined);
  const load = useCallback(async () => {
    const mine = ++latest.current;
    try {
      const r = await api.listTasks({
        limit: pageSize,
        status: filter.status,
        type: filter.type.trim(),
        priority: filter.priority,
        idPrefix: filter.text.trim(),
        pageToken,
      });
      if (mine !== latest.current) return;
      pageSequence.current = r.sequence;
      setRows(r.tasks);
      setTotal(r.total);
      setNext(r.nextPageToken);
      setError("");
      const start = live.startSequence;
      if (start !== undefined && r.sequence < start) void load();
    } catch (err) {
      if (mine === latest.current) setError(describeError(err).message);
    } finally {
      if (mine === latest.current) setLoaded(true);
    }
  }, [filter, pageToken]);

  useEffect(
    () =>
      live.onStart((after) => {
        if (pageSequence.current !== undefined && pageSequence.current < after) void load();
      }),
    [load],
  );

  useEffect(() => {
    void load();
  }, [load]);

  // A reload for new tasks, at most every 300 ms while they keep coming.
  const reload = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const refresher = useMemo(
    () =>
      new TaskRefresher((t) =>
        setRows((rs) => {
          const i = rs.findIndex((r) => r.id === t.id);
          if (i < 0) return rs;
          // A row that no longer matches the status filter leaves the page.
          if (filter.status && statusName(t.status).replace(" ", "_").toUpperCase() !== filter.status) {
            return rs.filter((r) => r.id !== t.id);
          }
          const copy = rs.slice();
          copy[i] = t;
          return copy;
        }),
      ),
    [filter.status],
  );
  useEffect(() => () => refresher.dispose(), [refresher]);

  const shown = useMemo(() => new Set(rows.map((r) => r.id)), [rows]);
  useLiveEvents(
    (events) => {
      let fresh = false;
      for (const ev of events) {
        if (!ev.taskId) continue;
        // A new task: submitted, or registered by a core reporting a run of its own (the same
        // event type also marks a re-registration, of a task that may be shown already).
        const created =
          ev.type === "task.submitted" || (ev.type === "task.registered" && !shown.has(ev.taskId));
        if (created || (ev.type === "task.status" && filter.status !== "")) fresh = true;
        else if (shown.has(ev.taskId)) refresher.touch(ev.taskId);
      }
      if (fresh && tokens.length === 1 && reload.current === undefined) {
        reload.current = setTimeout(() => {
          reload.current = undefined;
          void load();
        }, 300);
      }
    },
    [shown, refresher, load, tokens.length, filter.status],
  );
  useEffect(() => () => clearTimeout(reload.current), []);

  const set = (patch: Partial<Filter>) => {
    setFilter((f) => ({ ...f, ...patch }));
    setTokens([""]);
  };

  return (
    <section aria-labelledby="tasks-title">
      <h1 id="tasks-title">Tasks</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter tasks">
        <label>
          Status
          <select value={filter.status} onChange={(e) => set({ status: e.target.value })}>
            <option value="">any</option>
            {statuses.map((s) => (
              <option key={s} value={TaskStatus[s]}>
                {statusName(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type
          <input value={filter.type} onChange={(e) => set({ type: e.target.value })} placeholder="any" />
        </label>
        <label>
          Priority
          <select value={filter.priority} onChange={(e) => set({ priority: Number(e.target.value) })}>
            <option value={0}>any</option>
            {priorities.map((p) => (
              <option key={p} value={p}>
                {priorityName(p)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Id starts with
          <input value={filter.text} onChange={(e) => set({ text: e.target.value })} placeholder="id" />
        </label>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <p className="muted" aria-live="polite">
        {loaded ? `${total.toLocaleString()} tasks` : "Loading…"}
      </p>
      <div className="table-wrap">
        <table className="tasks">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Status</th>
              <th scope="col">Type</th>
              <th scope="col">Priority</th>
              <th scope="col">Daemon</th>
              <th scope="col">Progress</th>
              <th scope="col">Age</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <TaskRow key={t.id} task={t} />
            ))}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={tokens.length === 1} onClick={() => setTokens((t) => t.slice(0, -1))}>
          Newer
        </button>
        <span>Page {tokens.length}</span>
        <button type="button" disabled={!next} onClick={() => setTokens((t) => [...t, next])}>
          Older
        </button>
      </nav>
    </section>
  );
}

function TaskRow({ task: t }: { task: Task }) {
  const created = dateOf(t.createdAt);
  const started = dateOf(t.startedAt);
  const ended = dateOf(t.completedAt);
  const pct = Math.max(0, Math.min(100, Math.round(t.progress)));
  const status = statusName(t.status);
  return (
    <tr data-task-id={t.id} data-status={TaskStatus[t.status]}>
      <td>
        <a href={`#/tasks/${encodeURIComponent(t.id)}`} title={t.id}>
          {t.id.length > 14 ? `${t.id.slice(0, 12)}…` : t.id}
        </a>
      </td>
      <td>
        <span className={`badge st-${TaskStatus[t.status]?.toLowerCase()}`}>{status}</span>
      </td>
      <td>
        {t.type} {t.era === "play" && <span className="chip">play</span>}
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
