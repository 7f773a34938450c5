/**
 * Task run-time limits: a task submitted with timeout_seconds gets a deadline when it leaves
 * PENDING, and the deadline sweeper ends it TIMED_OUT once the deadline passes; a PENDING task never
 * times out; out-of-range limits are refused with INVALID_ARGUMENT naming the field.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { CoreSimulator, doneUpdate, startUpdate } from "./helpers/core-simulator.js";
import { describeEvents, type GatewayClients, gatewayClients, watchUntil } from "./helpers/event-watch.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("task timeouts", () => {
  let server: TestServer;
  let clients: GatewayClients;
  const cores: CoreSimulator[] = [];

  before(async () => {
    server = await startTestServer(["--sweep-interval-ms", "50"]);
    clients = gatewayClients(server.url);
  });

  after(async () => {
    for (const core of cores) await core.exit();
    clients.close();
    await server.close();
  });

  it("ends a RUNNING task TIMED_OUT once its timeout passes, and leaves a PENDING one alone", async () => {
    // Submitted first, never started: it must still be PENDING when the running one times out.
    const pendingId = "timeout-pending";
    const pending = await clients.api.submitTask({ taskId: pendingId, type: "playbook", timeoutSeconds: 1 });
    assert.equal(pending.success, true);
    const pendingTask = (await clients.api.getTaskStatus({ taskId: pendingId })).task;
    assert.equal(pendingTask?.status, TaskStatus.PENDING);
    assert.equal(pendingTask?.timeoutSeconds, 1);
    assert.equal(pendingTask?.deadlineAt, undefined, "no deadline while PENDING");

    const taskId = "timeout-running";
    const submitted = await clients.api.submitTask({
      taskId,
      type: "playbook",
      payload: { playbook: "slow.yml" },
      timeoutSeconds: 1,
    });
    assert.equal(submitted.success, true);
    const before = (await clients.api.getTaskStatus({ taskId })).task;
    assert.equal(before?.status, TaskStatus.PENDING);
    assert.equal(before?.deadlineAt, undefined, "no deadline while PENDING");

    // A core starts the run: its first progress update makes the task RUNNING with a deadline.
    const core = new CoreSimulator({
      target: `127.0.0.1:${server.port}`,
      run: { taskId, playbook: "slow.yml", inventory: "", variables: {}, engine: "local" },
    });
    cores.push(core);
    core.send(startUpdate("sleep 3600", "web1"));
    await core.waitForReplies(1);
    const running = (await clients.api.getTaskStatus({ taskId })).task;
    assert.equal(running?.status, TaskStatus.RUNNING);
    assert.ok(running?.startedAt && running.deadlineAt, "RUNNING sets started_at and deadline_at");
    assert.equal(
      timestampMs(running.deadlineAt) - timestampMs(running.startedAt),
      1000,
      "the deadline is timeout_seconds after the start",
    );
    assert.equal(running.completedAt, undefined);

    const statusEvents = await watchUntil(
      clients.api,
      { taskId, types: ["task.status"], afterSequence: 0n },
      (e) => e.some((x) => x.data.to === "TIMED_OUT"),
      15_000,
    );
    assert.deepEqual(
      statusEvents.map((e) => e.data),
      [
        { from: "PENDING", to: "RUNNING" },
        { from: "RUNNING", to: "TIMED_OUT", reason: "timed out after 1s" },
      ],
      describeEvents(statusEvents),
    );

    for (const res of [
      await clients.api.getTaskStatus({ taskId }),
      await clients.exec.getTaskStatus({ taskId }),
    ]) {
      const task = res.task;
      assert.equal(task?.status, TaskStatus.TIMED_OUT);
      assert.equal(task?.error, "timed out after 1s");
      assert.equal(task?.deadlineAt, undefined, "deadline_at is cleared once the task ended");
      assert.ok(task?.completedAt, "completed_at is set");
      assert.ok(timestampMs(task.completedAt) >= timestampMs(running.deadlineAt), "not before its deadline");
    }

    // A late update of the timed-out run is kept as history and changes nothing.
    core.send(doneUpdate("sleep 3600", "web1", "", 0));
    await core.waitForReplies(2);
    assert.equal((await clients.api.getTaskStatus({ taskId })).task?.status, TaskStatus.TIMED_OUT);

    // The PENDING task was older than its 1 s limit when the running one timed out: had it carried a
    // deadline, that deadline would have been due first, and the sweep would have ended it first.
    const stillPending = (await clients.api.getTaskStatus({ taskId: pendingId })).task;
    const timedOut = (await clients.api.getTaskStatus({ taskId })).task;
    assert.ok(stillPending?.createdAt && timedOut?.completedAt);
    assert.ok(timestampMs(stillPending.createdAt) + 1000 <= timestampMs(timedOut.completedAt));
    assert.equal(stillPending.status, TaskStatus.PENDING, "a PENDING task does not time out");
    assert.equal(stillPending.deadlineAt, undefined);
    assert.equal(stillPending.error, "");
    const pendingEvents = await watchUntil(clients.api, { taskId: pendingId }, (e) => e.length >= 1);
    assert.deepEqual(
      pendingEvents.map((e) => e.type),
      ["task.submitted"],
    );
  });

  for (const bad of [-1, 1_000_000_000]) {
    it(`refuses timeout_seconds ${bad} with INVALID_ARGUMENT naming the field`, async () => {
      const taskId = `timeout-bad-${bad < 0 ? "negative" : "huge"}`;
      await assert.rejects(
        clients.api.submitTask({ taskId, type: "playbook", timeoutSeconds: bad }),
        (err: unknown) => {
          const ce = ConnectError.from(err);
          assert.equal(ce.code, Code.InvalidArgument, ce.message);
          assert.match(ce.rawMessage, /timeout_seconds/);
          const fields = ce
            .findDetails(BadRequestSchema)
            .flatMap((d) => d.fieldViolations.map((v) => v.field));
          assert.deepEqual(fields, ["timeout_seconds"]);
          return true;
        },
      );
      await assert.rejects(clients.api.getTaskStatus({ taskId }), (err: unknown) => {
        assert.equal(ConnectError.from(err).code, Code.NotFound, "nothing was stored");
        return true;
      });
    });
  }
});
