/**
 * An in-process TaskStore that keeps everything in memory and loses it on exit. It answers every
 * call truthfully (same semantics as a durable backend) and serves until a durable backend is
 * configured.
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Event,
  EventSchema,
  type Task,
  TaskSchema,
  TaskStatus,
} from "../../../gen/spage/core/common_pb.js";
import type {
  EventQuery,
  NewEvent,
  StoreStats,
  TaskPage,
  TaskPatch,
  TaskQuery,
  TaskRecord,
  TaskStore,
} from "./task-store.js";

interface MutableRecord {
  task: Task;
  metadata: Record<string, string>;
  requestHash: string;
  order: number;
}

/** Creates an empty in-memory store. */
export function createMemoryStore(): TaskStore {
  const tasks = new Map<string, MutableRecord>();
  const events: Event[] = [];
  let order = 0;
  let closed = false;

  const assertOpen = () => {
    if (closed) throw new Error("store is closed");
  };
  const snapshot = (r: MutableRecord): TaskRecord => ({
    task: clone(TaskSchema, r.task),
    metadata: { ...r.metadata },
    requestHash: r.requestHash,
  });
  const append = (list: readonly NewEvent[], now: Date): Event[] =>
    list.map((e) => {
      const sequence = BigInt(events.length + 1);
      const ev = create(EventSchema, {
        id: `ev-${sequence}`,
        type: e.type,
        data: { ...e.data },
        timestamp: timestampFromDate(now),
        sequence,
        taskId: e.taskId,
      });
      events.push(ev);
      return clone(EventSchema, ev);
    });

  return {
    async createTask(input, event) {
      assertOpen();
      const existing = tasks.get(input.id);
      if (existing) return { record: snapshot(existing), created: false, events: [] };
      const now = new Date();
      const ts = timestampFromDate(now);
      const rec: MutableRecord = {
        task: create(TaskSchema, {
          id: input.id,
          type: input.type,
          priority: input.priority,
          payload: { ...input.payload },
          status: input.status,
          createdAt: ts,
          updatedAt: ts,
          startedAt: input.status === TaskStatus.RUNNING ? ts : undefined,
        }),
        metadata: { ...input.metadata },
        requestHash: input.requestHash,
        order: ++order,
      };
      tasks.set(input.id, rec);
      return { record: snapshot(rec), created: true, events: append([event], now) };
    },

    async getTask(id) {
      assertOpen();
      const rec = tasks.get(id);
      return rec ? snapshot(rec) : undefined;
    },

    async updateTask(id, expected, patch: TaskPatch, list) {
      assertOpen();
      const rec = tasks.get(id);
      if (!rec || rec.task.status !== expected) return undefined;
      const now = new Date();
      const t = rec.task;
      if (patch.status !== undefined) t.status = patch.status;
      if (patch.progress !== undefined) t.progress = patch.progress;
      if (patch.payload) t.payload = { ...patch.payload };
      if (patch.metadata) rec.metadata = { ...patch.metadata };
      if (patch.result) t.result = { ...patch.result };
      if (patch.error !== undefined) t.error = patch.error;
      if (patch.startedAt) t.startedAt = timestampFromDate(patch.startedAt);
      if (patch.completedAt) t.completedAt = timestampFromDate(patch.completedAt);
      t.updatedAt = timestampFromDate(now);
      return { record: snapshot(rec), events: append(list, now) };
    },

    async appendEvents(list) {
      assertOpen();
      return append(list, new Date());
    },

    async listTasks(q: TaskQuery): Promise<TaskPage> {
      assertOpen();
      const matching = [...tasks.values()]
        .filter(
          (r) =>
            (q.status === undefined || r.task.status === q.status) && (!q.type || r.task.type === q.type),
        )
        .sort((a, b) => b.order - a.order);
      return {
        tasks: matching.slice(q.offset, q.offset + q.limit).map((r) => clone(TaskSchema, r.task)),
        total: matching.length,
        sequence: BigInt(events.length),
      };
    },

    async readEvents(q: EventQuery) {
      assertOpen();
      const out: Event[] = [];
      for (let i = Number(q.afterSequence); i < events.length && out.length < q.limit; i++) {
        const ev = events[i];
        if (!ev) break;
        if (q.taskId && ev.taskId !== q.taskId) continue;
        if (q.types && q.types.size > 0 && !q.types.has(ev.type)) continue;
        out.push(clone(EventSchema, ev));
      }
      return out;
    },

    async stats(): Promise<StoreStats> {
      assertOpen();
      const byStatus = new Map<TaskStatus, number>();
      for (const r of tasks.values()) byStatus.set(r.task.status, (byStatus.get(r.task.status) ?? 0) + 1);
      return { tasksByStatus: byStatus, lastSequence: BigInt(events.length) };
    },

    async ping() {
      assertOpen();
    },

    async close() {
      closed = true;
    },
  };
}
