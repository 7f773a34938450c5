/**
 * The task list: filters (status, type, priority, id prefix, workflow, label), paging, live
 * updates, and batch cancel of selected rows or of everything the filter matches. Rows of
 * tasks the page shows are refreshed from their events; a new task appears on the first page
 * (newest first) as soon as it is submitted or a core registers a run of its own. A play (a run
 * of a Spage core of today) carries a "play" marker; listings do not carry its steps, and its
 * progress is the share of the steps seen so far that have ended. The workflow filter follows the
 * route (#/tasks?workflow=<id>), so a link to a workflow opens the list filtered by it.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { Task } from "../../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { api, describeError } from "../api.js";
import { cancelable } from "../format.js";
import { useLiveEvents, useTick } from "../hooks.js";
import { live } from "../live-events.js";
import { replaceRoute, tasksHref } from "../route.js";
import { TaskRefresher } from "../task-refresher.js";
import { BatchCancel } from "./batch-cancel.js";
import { filterQuery, noFilter, TaskFilters, type TaskFilterValues } from "./task-filters.js";
import { TaskRow } from "./task-row.js";

const pageSize = 50;

/** The list view, filtered to `workflow` (from the route) when given. */
export function TaskList({ workflow = "" }: { workflow?: string }) {
  const [filter, setFilter] = useState<TaskFilterValues>({ ...noFilter, workflow });
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
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
      const r = await api.listTasks({ limit: pageSize, ...filterQuery(filter), pageToken });
      if (mine !== latest.current) return;
      pageSequence.current = r.sequence;
      setRows(r.tasks);
      setTotal(r.total);
      setNext(r.nextPageToken);
      setError("");
      const start = live.startSequence;
      if (start !== undefined && r.sequence < start) void loadLatest.current();
    } catch (err) {
      if (mine === latest.current) setError(describeError(err).message);
    } finally {
      if (mine === latest.current) setLoaded(true);
    }
  }, [filter, pageToken]);
  // Timers and retries call the load of the filter shown when they fire, never the one of the
  // filter they were set under (an older filter's answer would replace the newer one's rows).
  const loadLatest = useRef(load);
  loadLatest.current = load;

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
          if (filter.status && TaskStatus[t.status] !== filter.status) {
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
          void loadLatest.current();
        }, 300);
      }
    },
    [shown, refresher, load, tokens.length, filter.status],
  );
  useEffect(() => () => clearTimeout(reload.current), []);

  const set = (patch: Partial<TaskFilterValues>) => {
    setFilter((f) => ({ ...f, ...patch }));
    setTokens([""]);
    setSelected(new Set());
    if (patch.workflow !== undefined) replaceRoute(tasksHref(patch.workflow.trim()));
  };
  const turn = (to: (t: string[]) => string[]) => {
    setTokens(to);
    setSelected(new Set());
  };
  // A link to a workflow (or to the plain list) changes the route: the filter follows it.
  const filterRef = useRef(filter);
  filterRef.current = filter;
  // biome-ignore lint/correctness/useExhaustiveDependencies: follows the route only.
  useEffect(() => {
    if (filterRef.current.workflow.trim() !== workflow) set({ workflow });
  }, [workflow]);

  // Only rows a cancel can still change are selectable; a row that ends or leaves the page drops out.
  const selectable = useMemo(() => rows.filter((r) => cancelable(r.status)).map((r) => r.id), [rows]);
  const selectedIds = selectable.filter((id) => selected.has(id));
  const select = useCallback((id: string, on: boolean) => {
    setSelected((s) => {
      const copy = new Set(s);
      if (on) copy.add(id);
      else copy.delete(id);
      return copy;
    });
  }, []);
  const allOnPage = selectable.length > 0 && selectedIds.length === selectable.length;
  const someOnPage = selectedIds.length > 0 && !allOnPage;
  const allBox = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (allBox.current) allBox.current.indeterminate = someOnPage;
  }, [someOnPage]);

  return (
    <section aria-labelledby="tasks-title">
      <h1 id="tasks-title">Tasks</h1>
      <TaskFilters filter={filter} onChange={set} />
      <BatchCancel
        selectedIds={selectedIds}
        filter={filter}
        onDone={() => {
          setSelected(new Set());
          void load();
        }}
      />
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
              <th scope="col" className="select">
                <label title="Select all on page">
                  <input
                    ref={allBox}
                    type="checkbox"
                    checked={allOnPage}
                    disabled={selectable.length === 0}
                    onChange={(e) => setSelected(e.target.checked ? new Set(selectable) : new Set())}
                  />
                  <span className="sr-only">Select all on page</span>
                </label>
              </th>
              <th scope="col">Task</th>
              <th scope="col">Status</th>
              <th scope="col">Type</th>
              <th scope="col">Workflow</th>
              <th scope="col">Priority</th>
              <th scope="col">Daemon</th>
              <th scope="col">Progress</th>
              <th scope="col">Age</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <TaskRow key={t.id} task={t} selected={selected.has(t.id)} onSelect={select} />
            ))}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={tokens.length === 1} onClick={() => turn((t) => t.slice(0, -1))}>
          Newer
        </button>
        <span>Page {tokens.length}</span>
        <button type="button" disabled={!next} onClick={() => turn((t) => [...t, next])}>
          Older
        </button>
      </nav>
    </section>
  );
}
