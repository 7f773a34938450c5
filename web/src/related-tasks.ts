/**
 * The tasks around one task, for its detail view: the tasks of its workflow (up to
 * `maxWorkflowTasks`), its dependencies and dependents, the task it retries and its retries. They
 * are read once, then kept fresh from the dashboard's live stream (no polling): an event about one
 * of them refreshes it (TaskRefresher), a task submitted into the workflow reloads the workflow,
 * and a task submitted with this one among its dependencies calls `onSelfChanged`, because the
 * task's `dependents` grew and no event of its own says so.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ListOrder } from "../../gen/spage/api/tasks_pb.js";
import type { Task } from "../../gen/spage/core/common_pb.js";
import { api } from "./api.js";
import { useLiveEvents } from "./hooks.js";
import { live } from "./live-events.js";
import { TaskRefresher } from "./task-refresher.js";

/** The most tasks of a workflow read for its graph; a bigger one shows the task's neighbours only. */
export const maxWorkflowTasks = 200;

/** What is known of the tasks around one task. */
export interface RelatedTasks {
  /** The tasks read so far, by id. */
  readonly byId: ReadonlyMap<string, Task>;
  /** Tasks in the workflow, over all pages (0 without a workflow). */
  readonly workflowTotal: number;
  /** Whether `byId` holds every task of the workflow. */
  readonly wholeWorkflow: boolean;
}

/** The tasks around `task` (undefined while it loads); `retryIds` are its retries. */
export function useRelatedTasks(
  task: Task | undefined,
  retryIds: readonly string[],
  onSelfChanged: () => void,
): RelatedTasks {
  const taskId = task?.id ?? "";
  const workflowId = task?.workflowId ?? "";
  const [byId, setById] = useState<ReadonlyMap<string, Task>>(new Map());
  const [workflowTotal, setWorkflowTotal] = useState(0);
  // The event log position each task's shown state reflects: an older answer is dropped.
  const sequences = useRef(new Map<string, bigint>());
  const current = useRef(taskId);

  const put = useCallback((forTask: string, tasks: readonly Task[], sequence: bigint) => {
    if (forTask !== current.current) return;
    const fresh = tasks.filter((t) => (sequences.current.get(t.id) ?? -1n) <= sequence);
    if (fresh.length === 0) return;
    for (const t of fresh) sequences.current.set(t.id, sequence);
    setById((m) => {
      const copy = new Map(m);
      for (const t of fresh) copy.set(t.id, t);
      return copy;
    });
  }, []);

  useEffect(() => {
    current.current = taskId;
    sequences.current = new Map();
    setById(new Map());
    setWorkflowTotal(0);
  }, [taskId]);

  const refresher = useMemo(() => new TaskRefresher((t, seq) => put(taskId, [t], seq), 50), [taskId, put]);
  useEffect(() => () => refresher.dispose(), [refresher]);

  // The workflow, oldest first, and the log position the listing reflects.
  const listedAt = useRef<bigint | undefined>(undefined);
  const loadWorkflow = useCallback(async () => {
    if (!workflowId) return;
    try {
      const r = await api.listTasks({ workflowId, limit: maxWorkflowTasks, order: ListOrder.OLDEST_FIRST });
      if (current.current !== taskId) return;
      listedAt.current = r.sequence;
      setWorkflowTotal(r.total);
      put(taskId, r.tasks, r.sequence);
    } catch {
      // The connection indicator says what is wrong; the next event about the workflow reloads it.
    }
  }, [taskId, workflowId, put]);
  useEffect(() => {
    listedAt.current = undefined;
    void loadWorkflow();
  }, [loadWorkflow]);

  // A listing older than the start of the live stream may have missed changes: read it again.
  useEffect(
    () =>
      live.onStart((after) => {
        if (listedAt.current !== undefined && listedAt.current < after) void loadWorkflow();
        for (const id of sequences.current.keys()) refresher.touch(id);
      }),
    [loadWorkflow, refresher],
  );

  // Linked tasks outside the listing are read one by one.
  const wanted = useMemo(() => {
    const ids = new Set([...(task?.dependsOn ?? []), ...(task?.dependents ?? []), ...retryIds]);
    if (task?.retryOf) ids.add(task.retryOf);
    return ids;
  }, [task?.dependsOn, task?.dependents, task?.retryOf, retryIds]);
  useEffect(() => {
    for (const id of wanted) if (!sequences.current.has(id)) refresher.touch(id);
  }, [wanted, refresher]);

  // A burst of submissions into the workflow reloads it once.
  const reload = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(reload.current), []);
  useLiveEvents(
    (events) => {
      let grew = false;
      let self = false;
      for (const ev of events) {
        if (!ev.taskId || ev.taskId === taskId) continue;
        if (ev.type === "task.submitted") {
          if (workflowId && ev.data.workflow_id === workflowId) grew = true;
          if ((ev.data.depends_on ?? "").split(",").includes(taskId)) self = true;
        } else if (sequences.current.has(ev.taskId) || wanted.has(ev.taskId)) {
          refresher.touch(ev.taskId);
        }
      }
      if (self) onSelfChanged();
      if (grew && reload.current === undefined) {
        reload.current = setTimeout(() => {
          reload.current = undefined;
          void loadWorkflow();
        }, 300);
      }
    },
    [taskId, workflowId, wanted, refresher, loadWorkflow, onSelfChanged],
  );

  return {
    byId,
    workflowTotal,
    wholeWorkflow: workflowId !== "" && listedAt.current !== undefined && workflowTotal <= maxWorkflowTasks,
  };
}
