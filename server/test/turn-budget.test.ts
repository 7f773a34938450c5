/**
 * The per-turn budget of a server stream (server/src/events/turn-budget.ts): a stream sends its
 * share, then waits for the next event-loop turn, and starts the next turn with a fresh share. The
 * time slice is set out of reach here, so only counts decide and nothing depends on timing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextTurn, TurnBudget } from "../src/events/turn-budget.js";

const noSlice = Number.POSITIVE_INFINITY;

/** How many messages of `bytes` the budget lets through before it asks to wait. */
function sendable(budget: TurnBudget, bytes: number, upTo = 1000): number {
  for (let n = 0; n < upTo; n++) if (budget.spend(bytes)) return n;
  return upTo;
}

describe("turn budget", () => {
  it("lets a stream send its share of messages per turn, then waits for the next turn", async () => {
    const budget = new TurnBudget({ bytes: Number.POSITIVE_INFINITY, messages: 3, sliceMs: noSlice });
    assert.equal(sendable(budget, 10), 3);
    const wait = budget.spend(10);
    assert.ok(wait, "over its share, a stream is told to wait");
    await wait;
    assert.equal(sendable(budget, 10), 3, "the next turn brings a fresh share");
  });

  it("counts bytes too: a stream stops once it has sent its bytes for the turn", async () => {
    const budget = new TurnBudget({ bytes: 1000, messages: 1000, sliceMs: noSlice });
    // 300-byte messages: 0, 300, 600 and 900 are under 1000, so four go out.
    assert.equal(sendable(budget, 300), 4);
    await nextTurn();
    assert.equal(sendable(budget, 300), 4);
  });

  it("gives each stream its own share, and every waiting stream a new one in the next turn", async () => {
    const limits = { bytes: Number.POSITIVE_INFINITY, messages: 2, sliceMs: noSlice };
    const a = new TurnBudget(limits);
    const b = new TurnBudget(limits);
    assert.equal(sendable(a, 1), 2);
    assert.equal(sendable(b, 1), 2, "one stream's use does not take from another's");
    const [waitA, waitB] = [a.spend(1), b.spend(1)];
    assert.equal(waitA, waitB, "streams waiting in the same turn wait for the same next turn");
    await waitA;
    assert.equal(sendable(a, 1), 2);
    assert.equal(sendable(b, 1), 2);
  });

  it("lets work that sends nothing go on while the turn's time lasts", () => {
    const budget = new TurnBudget({ bytes: 1, messages: 1, sliceMs: noSlice });
    assert.equal(budget.checkpoint(), undefined);
    assert.equal(sendable(budget, 1), 1);
    assert.equal(budget.checkpoint(), undefined, "a used-up share does not hold up a page read");
  });

  it("lets a stream the turn's time cut off before it sent anything go first in the next turn", async () => {
    // `busy` used its share of messages; `starved` found the turn's time already used up.
    const busy = new TurnBudget({ bytes: Number.POSITIVE_INFINITY, messages: 1, sliceMs: noSlice });
    const starved = new TurnBudget({ bytes: Number.POSITIVE_INFINITY, messages: 100, sliceMs: -1 });
    assert.equal(sendable(busy, 1), 1);
    const order: string[] = [];
    const waits = [
      (busy.spend(1) as Promise<void>).then(() => order.push("busy")),
      (starved.spend(1) as Promise<void>).then(() => order.push("starved")),
    ];
    await Promise.all(waits);
    assert.deepEqual(order, ["starved", "busy"], "it waited later, and resumes first");
  });
});
