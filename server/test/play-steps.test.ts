/**
 * A play's step table is the same whatever order its updates arrive in and however often each is
 * repeated (a core sends them from concurrent goroutines and resends after a broken stream): checked
 * over random plays, orders and duplicates with fast-check, plus the rules one by one.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { TaskMetricsSchema, TaskStatus, type TaskStep } from "../../gen/spage/core/common_pb.js";
import {
  applyStepUpdate,
  maxSteps,
  maxStepText,
  type StepUpdate,
  settleSteps,
  stepProgress,
} from "../src/domain/play-steps.js";

const finals = [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED] as const;

/** The two updates of one step, as a core sends them. */
function updatesOf(n: number, final: TaskStatus): StepUpdate[] {
  return [
    {
      number: n,
      name: `step ${n}`,
      status: TaskStatus.RUNNING,
      output: "",
      error: "",
      startedAt: timestampFromMs(1000 * n),
    },
    {
      number: n,
      name: `step ${n}`,
      status: final,
      output: final === TaskStatus.COMPLETED ? `out ${n}` : "",
      error: final === TaskStatus.FAILED ? `err ${n}` : "",
      metrics: create(TaskMetricsSchema, { duration: n / 10 }),
      completedAt: timestampFromMs(1000 * n + 500),
    },
  ];
}

function applyAll(updates: readonly StepUpdate[]): TaskStep[] {
  let steps: TaskStep[] = [];
  for (const u of updates) steps = applyStepUpdate(steps, u, new Date(0)).steps;
  return steps;
}

/** A step table without update times, for comparing tables built in different orders. */
function facts(steps: readonly TaskStep[]) {
  return steps.map((s) => [
    s.number,
    s.name,
    TaskStatus[s.status],
    s.output,
    s.error,
    s.duration,
    s.startedAt?.seconds,
    s.completedAt?.seconds,
  ]);
}

describe("play steps", () => {
  it("any order and any repeats of a play's updates give the table of the in-order run", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...finals), { minLength: 1, maxLength: 8 }),
        fc.infiniteStream(fc.nat()),
        fc.array(fc.nat(), { maxLength: 12 }),
        (plan, order, repeats) => {
          const inOrder = plan.flatMap((final, i) => updatesOf(i + 1, final));
          const shuffled = [...inOrder];
          const it = order[Symbol.iterator]();
          for (let i = shuffled.length - 1; i > 0; i--) {
            const j = (it.next().value as number) % (i + 1);
            [shuffled[i], shuffled[j]] = [shuffled[j] as StepUpdate, shuffled[i] as StepUpdate];
          }
          for (const r of repeats)
            shuffled.splice(r % (shuffled.length + 1), 0, inOrder[r % inOrder.length] as StepUpdate);
          const expected = applyAll(inOrder);
          const got = applyAll(shuffled);
          assert.deepEqual(facts(got), facts(expected));
          assert.ok(
            got.every((s) => s.status !== TaskStatus.RUNNING),
            "no finished step is RUNNING again",
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a repeat changes nothing and says so", () => {
    const [start, end] = updatesOf(1, TaskStatus.COMPLETED) as [StepUpdate, StepUpdate];
    const once = applyStepUpdate([], start).steps;
    const twice = applyStepUpdate(once, start);
    assert.equal(twice.changed, false);
    const done = applyStepUpdate(once, end).steps;
    assert.equal(applyStepUpdate(done, end).changed, false);
    assert.equal(applyStepUpdate(done, start).changed, false, "RUNNING after the end changes nothing");
  });

  it("the first final state is kept", () => {
    const [, failed] = updatesOf(1, TaskStatus.FAILED) as [StepUpdate, StepUpdate];
    const steps = applyStepUpdate([], failed).steps;
    const after = applyStepUpdate(steps, { ...failed, status: TaskStatus.COMPLETED, error: "" }).steps;
    assert.equal(after[0]?.status, TaskStatus.FAILED);
    assert.equal(after[0]?.error, "err 1");
  });

  it("duration comes from the metrics, else from the times", () => {
    const [start, end] = updatesOf(3, TaskStatus.COMPLETED) as [StepUpdate, StepUpdate];
    assert.equal(applyAll([start, end])[0]?.duration, 0.3);
    const { metrics: _, ...noMetrics } = end;
    assert.equal(applyAll([start, noMetrics])[0]?.duration, 0.5);
  });

  it("output is clipped to the table's limit, and the table has a bound", () => {
    const big = "x".repeat(maxStepText * 3);
    const [, end] = updatesOf(1, TaskStatus.COMPLETED) as [StepUpdate, StepUpdate];
    const step = applyStepUpdate([], { ...end, output: big }).steps[0];
    assert.ok(Buffer.byteLength(step?.output ?? "") <= maxStepText);
    let steps: TaskStep[] = [];
    for (let n = 1; n <= maxSteps; n++)
      steps.push({ ...(applyStepUpdate([], { ...end, number: n }).steps[0] as TaskStep) });
    steps = steps.sort((a, b) => a.number - b.number);
    const full = applyStepUpdate(steps, { ...end, number: maxSteps + 1 });
    assert.equal(full.full, true);
    assert.equal(full.steps.length, maxSteps);
  });

  it("progress stays below 100 while running; settled steps fail with the cause", () => {
    const [start1, end1] = updatesOf(1, TaskStatus.COMPLETED) as [StepUpdate, StepUpdate];
    const [start2] = updatesOf(2, TaskStatus.COMPLETED) as [StepUpdate, StepUpdate];
    const steps = applyAll([start1, end1, start2]);
    assert.equal(stepProgress(steps), 50);
    assert.equal(stepProgress(applyAll([start1, end1])), 99);
    const settled = settleSteps(steps, "interrupted: gone");
    assert.equal(settled[1]?.status, TaskStatus.FAILED);
    assert.equal(settled[1]?.error, "interrupted: gone");
    assert.equal(settled[0]?.status, TaskStatus.COMPLETED);
  });
});
