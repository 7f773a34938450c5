/**
 * Fuzz test of every RPC of SpageExecution and SpageAPI over Connect (HTTP/1.1, plain fetch), in
 * JSON and in binary, against a real gateway with authentication on.
 *
 * For each method, fast-check sends:
 * - valid-shaped messages built from the generated schema by reflection (random strings from empty
 *   to ~64 KiB, Unicode, control characters and lone surrogates; integers in and out of range; enum
 *   numbers that do not exist; maps with many keys; nested messages), as JSON and as binary;
 * - mutated binary encodings (bits flipped, bytes set, inserted, deleted, truncated);
 * - mutated JSON (wrong types, unknown and duplicate keys, null, deeply nested arrays, lone
 *   surrogates, numbers as strings, integers beyond 2^64, invalid UTF-8);
 * - random and near-miss Authorization headers, which must be refused as unauthenticated.
 * Server-streaming methods use the Connect streaming envelope; bidi methods cannot work over
 * HTTP/1.1 and must be refused properly.
 *
 * Every answer must be a proper Connect answer (see checkConnectAnswer): a 200 with decodable
 * messages, or Connect's HTTP status for a JSON error `{code, message}` with a known code, never
 * internal/unknown from the gateway itself and never with internals (stack, error class, paths) in
 * the message. No request may hang (10 s each), and after every batch the gateway must still answer
 * HealthCheck. Finally the state must be consistent: the task count is the 20 tasks made before
 * fuzzing plus every task a fuzzed call reported created, every task reads back in both codecs and
 * those 20 are unchanged, the event log replays gap-free from sequence 1, and the audit log's hash
 * chain verifies. Three targeted properties close the file: the audit chain stays verifiable
 * whatever (astral) text refused requests quote in their errors; ListTasks' created_before/after
 * filters agree with the tasks' creation times for any Timestamp (or refuse it); and a task stays
 * readable over JSON after ReportTaskResult with any started_at/completed_at.
 *
 * Seeds are fixed (FUZZ_SEED changes the base seed, FUZZ_RUNS the runs per property); fast-check
 * prints the seed and path of a failing property.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { DescMethod, Message } from "@bufbuild/protobuf";
import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { TimestampSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import {
  type AuditEvent,
  AuditEventSchema,
  CreateApiKeyRequestSchema,
  ListAuditEventsRequestSchema,
  type ListAuditEventsResponse,
} from "../../gen/spage/api/access_pb.js";
import {
  GetTaskStatusRequestSchema,
  type GetTaskStatusResponse,
  ListOrder,
  ListTasksRequestSchema,
  type ListTasksResponse,
  SpageAPI,
  SubmitTaskRequestSchema,
} from "../../gen/spage/api/tasks_pb.js";
import {
  type Event,
  type HealthStatus,
  type Task,
  TaskResultSchema,
  TaskStatus,
} from "../../gen/spage/core/common_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { methodRequirements, type Requirement } from "../src/auth/scopes.js";
import { auditHash, type ChainedRecord, ChainVerifier } from "../src/domain/audit-chain.js";
import {
  arbAuthorization,
  arbByteMutations,
  arbJsonMutations,
  arbMessage,
  type CheckedAnswer,
  type Codec,
  checkConnectAnswer,
  encodeMessage,
  envelope,
  type GenContext,
  isUsableAuthorization,
  mutateBytes,
  mutateJson,
  sendConnect,
} from "./helpers/fuzz-requests.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** Base seed of every property; each property adds its own offset. */
const baseSeed = Number(process.env.FUZZ_SEED ?? 20_250_611);
/** Runs per property (5 properties per method, 24 methods). */
const numRuns = Number(process.env.FUZZ_RUNS ?? 8);
/** No request may take longer than this. */
const requestTimeoutMs = 10_000;
/** A server stream silent this long is live (WatchEvents follows new events) and is cancelled. */
const streamIdleMs = 250;
const knownTaskCount = 20;
/** Ids the fuzzer reuses, so later calls find tasks earlier calls made. */
const fuzzTaskIds = ["fz-0", "fz-1", "fz-2", "fz-3", "fz-4", "fz-5"];
/** Methods whose success stores a task (RegisterTask creates the task when it does not exist). */
const creatingMethods = new Set([
  "/spage.api.SpageAPI/SubmitTask",
  "/spage.core.SpageExecution/ExecuteTask",
  "/spage.core.SpageExecution/RegisterTask",
  "/spage.core.SpageExecution/ExecutePlay",
  "/spage.core.SpageExecution/RegisterPlay",
  "/spage.api.SpageAPI/SubmitTasks",
  "/spage.api.SpageAPI/RetryTask",
]);

/** Timestamp seconds of any int64, in and out of the range JSON can carry (years 1 to 9999). */
const nowSeconds = BigInt(Math.floor(Date.now() / 1000));
const anySeconds = fc.oneof(
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.bigInt({ min: -62_135_596_800n, max: 253_402_300_799n }),
  fc.bigInt({ min: nowSeconds - 86_400n, max: nowSeconds + 86_400n }),
  fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 8_640_000_000_001n, -8_640_000_000_001n, 253_402_300_800n),
);
/** Timestamp nanos of any int32, mostly valid. */
const anyNanos = fc.oneof(fc.integer({ min: 0, max: 999_999_999 }), fc.integer());

/** One RPC under test. */
interface Rpc {
  readonly method: DescMethod;
  /** `/<service>/<method>`. */
  readonly path: string;
  readonly requirement: Requirement;
  /** Sent with the Connect streaming protocol. */
  readonly streaming: boolean;
}

const rpcs: readonly Rpc[] = [SpageExecution, SpageAPI].flatMap((service) =>
  service.methods.map((method) => {
    const requirement = methodRequirements.get(`${service.typeName}/${method.name}`);
    assert.ok(requirement, `${service.typeName}/${method.name} is missing from the scope table`);
    return {
      method,
      path: `/${service.typeName}/${method.name}`,
      requirement,
      streaming: method.methodKind !== "unary",
    };
  }),
);

/** Finds an RPC by path. */
function rpc(path: string): Rpc {
  const found = rpcs.find((r) => r.path === path);
  assert.ok(found, `no RPC ${path}`);
  return found;
}

describe("fuzz: every RPC over Connect JSON and binary", () => {
  let server: TestServer;
  let adminAuth = "";
  const knownIds = Array.from({ length: knownTaskCount }, (_, i) => `known-${String(i).padStart(2, "0")}`);
  /** Ids of every task a call reported stored (known ones included when resubmitted identically). */
  const reportedTasks = new Set<string>();
  /** Outcome counts (ok, each error code, refused bidi, live stream) per method, for the summary. */
  const outcomes = new Map<string, Map<string, number>>();
  let requests = 0;

  /**
   * Sends one request, checks the answer is a proper Connect answer (throwing otherwise) and
   * records tasks it reports created.
   */
  async function call(
    target: Rpc,
    codec: Codec,
    body: Uint8Array,
    authorization: string | undefined,
    idleMs = streamIdleMs,
  ): Promise<CheckedAnswer> {
    requests++;
    const ans = await sendConnect(
      server.url,
      { path: target.path, streaming: target.streaming, codec, body, authorization },
      { timeoutMs: requestTimeoutMs, ...(target.streaming ? { idleMs } : {}) },
    );
    const checked = checkConnectAnswer(target.method, codec, ans);
    const outcome =
      target.method.methodKind === "bidi_streaming"
        ? "bidi refused (505)"
        : checked.cutWhileIdle
          ? "live stream cancelled"
          : (checked.error?.code ?? "ok");
    const byMethod = outcomes.get(outcome) ?? new Map<string, number>();
    outcomes.set(outcome, byMethod.set(target.method.name, (byMethod.get(target.method.name) ?? 0) + 1));
    const first = checked.messages[0] as
      | (Message & { taskId?: unknown; playId?: unknown; taskIds?: unknown; task?: { id?: unknown } })
      | undefined;
    if (!checked.error && creatingMethods.has(target.path) && first) {
      // A play's id is its task's id; SubmitTasks names several, RetryTask answers the new task.
      const ids = Array.isArray(first.taskIds)
        ? first.taskIds
        : [first.taskId ?? first.playId ?? first.task?.id];
      assert.ok(ids.length > 0, `${target.path} succeeded without a task id`);
      for (const id of ids) {
        assert.equal(typeof id, "string");
        assert.notEqual(id, "", `${target.path} succeeded without a task id`);
        reportedTasks.add(id as string);
      }
    }
    return checked;
  }

  /** Encodes a message for `target` in `codec`, enveloped when the method streams. */
  function frame(target: Rpc, payload: Uint8Array): Uint8Array {
    return target.streaming ? envelope(payload) : payload;
  }

  /** Generator settings for `target`: registrations never get the known ids (they would fill them). */
  function genContext(target: Rpc, jsonSafe: boolean, wellFormed = false): Omit<GenContext, "plausible"> {
    const registers = target.method.name === "RegisterTask" || target.method.name === "RegisterPlay";
    const known = registers ? [] : knownIds;
    return {
      taskIds: [...fuzzTaskIds, ...known],
      apiKey: server.adminKey,
      jsonSafe,
      wellFormed,
      maxDepth: 3,
    };
  }

  /** Runs one async property with a fixed seed derived from `offset`. */
  async function check<T>(
    offset: number,
    arb: fc.Arbitrary<T>,
    run: (value: T) => Promise<void>,
    runs = numRuns,
  ): Promise<void> {
    await fc.assert(fc.asyncProperty(arb, run), {
      numRuns: runs,
      seed: baseSeed + offset,
      // A property that keeps failing slowly (hangs) stops shrinking and reports what it has.
      interruptAfterTimeLimit: 60_000,
      markInterruptAsFailure: true,
      includeErrorInReport: true,
    });
  }

  /** Calls a unary method with Connect JSON and the admin key; the call must succeed. */
  async function unaryOk<T extends Message>(path: string, body: unknown, codec: Codec = "json"): Promise<T> {
    const target = rpc(path);
    const bytes =
      codec === "json"
        ? Buffer.from(JSON.stringify(body))
        : toBinary(target.method.input, create(target.method.input, body as never));
    const res = await call(target, codec, bytes, adminAuth);
    assert.equal(res.error, undefined, `${path}: ${JSON.stringify(res.error)}`);
    return res.messages[0] as T;
  }

  before(async () => {
    server = await startTestServer([
      "--auth",
      "on",
      "--rate-limits",
      "tasks:read=100000,tasks:write=100000,tasks:cancel=100000,agent=100000,execution=100000,admin=100000,streams=100000",
      "--auth-failures-per-minute",
      "100000",
    ]);
    adminAuth = `Bearer ${server.adminKey}`;
    for (const [i, id] of knownIds.entries()) {
      const res = await unaryOk<Message & { taskId: string }>("/spage.api.SpageAPI/SubmitTask", {
        taskId: id,
        type: i % 2 === 0 ? "playbook" : "shell",
        payload: { playbook: `site-${i}.yml`, n: String(i) },
      });
      assert.equal(res.taskId, id);
    }
  });

  afterEach(async () => {
    // Not through call(): health checks are not fuzz outcomes.
    const health = rpc("/spage.api.SpageAPI/HealthCheck");
    const ans = await sendConnect(
      server.url,
      { path: health.path, streaming: false, codec: "json", body: Buffer.from("{}") },
      { timeoutMs: requestTimeoutMs },
    );
    const res = checkConnectAnswer(health.method, "json", ans);
    assert.equal(res.error, undefined, `HealthCheck after the batch: ${JSON.stringify(res.error)}`);
    const status = (res.messages[0] as HealthStatus).status;
    assert.match(status, /^(healthy|degraded)$/, `HealthCheck after the batch: ${status}`);
  });

  after(async () => {
    await server.close(5000);
  });

  for (const [index, target] of rpcs.entries()) {
    const input = target.method.input;
    const seedOffset = index * 10;

    describe(target.path, () => {
      for (const codec of ["json", "proto"] as const) {
        it(`valid-shaped random messages, Connect ${codec}`, async () => {
          const style = fc.record({ enumAsInteger: fc.boolean(), useProtoFieldName: fc.boolean() });
          await check(
            seedOffset + (codec === "json" ? 0 : 1),
            fc.tuple(arbMessage(input, genContext(target, codec === "json")), style),
            async ([msg, s]) => {
              await call(target, codec, frame(target, encodeMessage(input, msg, codec, s)), adminAuth);
            },
          );
        });
      }

      it("mutated binary encodings", async () => {
        await check(
          seedOffset + 2,
          fc.tuple(arbMessage(input, genContext(target, false)), arbByteMutations(), fc.boolean()),
          async ([msg, mutations, mutateEnvelope]) => {
            const payload = toBinary(input, msg);
            const body =
              target.streaming && mutateEnvelope
                ? mutateBytes(envelope(payload), mutations)
                : frame(target, mutateBytes(payload, mutations));
            await call(target, "proto", body, adminAuth);
          },
        );
      });

      it("mutated JSON", async () => {
        await check(
          seedOffset + 3,
          fc.tuple(
            arbMessage(input, genContext(target, true)),
            arbJsonMutations(),
            fc.option(arbByteMutations(), { nil: undefined, freq: 4 }),
          ),
          async ([msg, mutations, byteMutations]) => {
            const text = Buffer.from(mutateJson(input, msg, mutations));
            const payload = byteMutations ? mutateBytes(text, byteMutations) : text;
            await call(target, "json", frame(target, payload), adminAuth);
          },
        );
      });

      it("fuzzed Authorization header", async () => {
        await check(
          seedOffset + 4,
          fc.tuple(
            // Well-formed messages: a body that does not decode is refused before authentication.
            arbMessage(input, genContext(target, true, true)),
            fc.constantFrom<Codec>("json", "proto"),
            fc.option(arbAuthorization(server.adminKey), { nil: undefined, freq: 8 }),
          ),
          async ([msg, codec, authorization]) => {
            const res = await call(
              target,
              codec,
              frame(target, encodeMessage(input, msg, codec)),
              authorization,
            );
            // Callers without credentials pass auth only on the methods a Spage core calls.
            const anonymousCore =
              authorization === undefined &&
              target.requirement.kind === "scope" &&
              target.requirement.anonymousCore === true;
            const mayPass =
              target.requirement.kind === "public" ||
              anonymousCore ||
              (authorization !== undefined && isUsableAuthorization(authorization, server.adminKey));
            if (mayPass || target.method.methodKind === "bidi_streaming") return;
            assert.equal(
              res.error?.code,
              "unauthenticated",
              `${target.path} with Authorization ${JSON.stringify(authorization)}: ${JSON.stringify(res.error)}`,
            );
          },
        );
      });
    });
  }

  describe("after fuzzing", () => {
    /** Every stored task, read with ListTasks over Connect binary, page by page. */
    async function allTasks(): Promise<Task[]> {
      const tasks: Task[] = [];
      let pageToken = "";
      do {
        const page = await unaryOk<ListTasksResponse>(
          "/spage.api.SpageAPI/ListTasks",
          create(ListTasksRequestSchema, { limit: 1000, pageToken, order: ListOrder.OLDEST_FIRST }),
          "proto",
        );
        tasks.push(...page.tasks);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return tasks;
    }

    it("the task count is the 20 known tasks plus every task a fuzzed call reported created", async (t) => {
      t.diagnostic(`${requests} requests`);
      for (const [outcome, byMethod] of outcomes) {
        const total = [...byMethod.values()].reduce((a, b) => a + b, 0);
        t.diagnostic(`${outcome}: ${total} (${[...byMethod].map(([m, n]) => `${m} ${n}`).join(", ")})`);
      }
      const created = [...reportedTasks].filter((id) => !knownIds.includes(id));
      t.diagnostic(`tasks reported created by fuzzed calls: ${created.length}`);
      const list = await unaryOk<ListTasksResponse>(
        "/spage.api.SpageAPI/ListTasks",
        create(ListTasksRequestSchema, { limit: 1 }),
        "proto",
      );
      const stored = (await allTasks()).map((task) => task.id);
      assert.equal(stored.length, list.total, "ListTasks total and the tasks listed page by page");
      assert.equal(
        list.total,
        knownTaskCount + created.length,
        `ListTasks total; stored but never reported: ${JSON.stringify(
          stored.filter((id) => !reportedTasks.has(id) && !knownIds.includes(id)),
        )}; reported but not stored: ${JSON.stringify(created.filter((id) => !stored.includes(id)))}`,
      );
    });

    it("every task reads back with GetTaskStatus in JSON and binary; the known ones are unchanged", async () => {
      const get = rpc("/spage.api.SpageAPI/GetTaskStatus");
      const unreadable: string[] = [];
      for (const task of await allTasks()) {
        for (const codec of ["json", "proto"] as const) {
          const body = encodeMessage(
            get.method.input,
            create(GetTaskStatusRequestSchema, { taskId: task.id }),
            codec,
          );
          try {
            const res = await call(get, codec, body, adminAuth);
            assert.equal(res.error, undefined, JSON.stringify(res.error));
          } catch (err) {
            unreadable.push(
              `${task.id} (${codec}): ${err instanceof Error ? err.message.split("\n")[0] : err}`,
            );
          }
        }
      }
      assert.deepEqual(unreadable, [], "tasks that cannot be read back");
      for (const [i, id] of knownIds.entries()) {
        const { task } = await unaryOk<GetTaskStatusResponse>("/spage.api.SpageAPI/GetTaskStatus", {
          taskId: id,
        });
        assert.ok(task, id);
        assert.equal(task.type, i % 2 === 0 ? "playbook" : "shell", id);
        assert.deepEqual({ ...task.payload }, { playbook: `site-${i}.yml`, n: String(i) }, id);
      }
    });

    it("WatchEvents from sequence 0 replays the event log gap-free", async (t) => {
      const list = await unaryOk<ListTasksResponse>(
        "/spage.api.SpageAPI/ListTasks",
        create(ListTasksRequestSchema, { limit: 1 }),
        "proto",
      );
      const watch = rpc("/spage.api.SpageAPI/WatchEvents");
      const replay = await call(
        watch,
        "json",
        envelope(Buffer.from(JSON.stringify({ afterSequence: "0" }))),
        adminAuth,
        // The replay comes at once; a long silence after it means it is complete.
        2000,
      );
      assert.equal(replay.error, undefined, JSON.stringify(replay.error));
      const sequences = (replay.messages as Event[]).map((e) => e.sequence);
      assert.ok(
        sequences.length >= Number(list.sequence),
        `replayed ${sequences.length} of ${list.sequence} events`,
      );
      for (const [i, sequence] of sequences.entries()) {
        assert.equal(sequence, BigInt(i + 1), `event ${i + 1} of the replay has sequence ${sequence}`);
      }
      t.diagnostic(`events replayed: ${sequences.length}`);
    });

    /** Audit records after `afterSequence`, read with ListAuditEvents over Connect binary, page by page. */
    async function auditRecords(afterSequence = 0n): Promise<AuditEvent[]> {
      const records: AuditEvent[] = [];
      let after = afterSequence;
      for (;;) {
        const page = await unaryOk<ListAuditEventsResponse>(
          "/spage.api.SpageAPI/ListAuditEvents",
          create(ListAuditEventsRequestSchema, { afterSequence: after, limit: 1000 }),
          "proto",
        );
        records.push(...page.events);
        if (page.nextAfterSequence === 0n) return records;
        after = page.nextAfterSequence;
      }
    }

    /** An audit record as the chain verifier reads it (its Timestamp converted with timestampDate). */
    function chained(r: AuditEvent): ChainedRecord {
      assert.ok(r.time, `audit record ${r.sequence} has no time`);
      return {
        sequence: r.sequence,
        time: timestampDate(r.time),
        principal: r.principal,
        keyId: r.keyId,
        clientAddress: r.clientAddress,
        method: r.method,
        taskId: r.taskId,
        code: r.code,
        requestId: r.requestId,
        detail: r.detail,
        prevHash: r.prevHash,
        hash: r.hash,
      };
    }

    /** One line describing an audit record, for assertion messages. */
    const describeRecord = (r: AuditEvent) => JSON.stringify(toJson(AuditEventSchema, r)).slice(0, 1000);

    it("the audit log's hash chain verifies from the first record to the last", async (t) => {
      const verifier = new ChainVerifier();
      const records = await auditRecords();
      for (const r of records) {
        assert.ok(
          verifier.add(chained(r)),
          `audit chain broken at ${verifier.broken?.sequence}: ${verifier.broken?.reason}; the record as read: ${describeRecord(r)}`,
        );
      }
      assert.ok(records.length > knownTaskCount, `only ${records.length} audit records`);
      assert.equal(verifier.checked, records.length);
      t.diagnostic(`audit records verified: ${records.length}`);
    });

    it("the audit chain stays verifiable whatever text a refused request carries", async () => {
      // Error messages quote request text cut to a length (on_lost to 32 UTF-16 units, the audit
      // detail to 200); a cut between the two halves of a surrogate pair must not break the chain.
      const submit = rpc("/spage.api.SpageAPI/SubmitTask");
      const createKey = rpc("/spage.api.SpageAPI/CreateApiKey");
      const astral = fc
        .tuple(
          fc.string({ maxLength: 3 }),
          fc.array(fc.constantFrom("🙂", "𝒳", "𐍈", "😀"), { minLength: 16, maxLength: 120 }),
        )
        .map(([prefix, chars]) => prefix + chars.join(""));
      await check(
        3_000_000,
        fc.tuple(astral, fc.constantFrom<Codec>("json", "proto")),
        async ([text, codec]) => {
          const last = (await auditRecords()).at(-1);
          assert.ok(last, "no audit records");
          const submitBody = create(SubmitTaskRequestSchema, { type: "playbook", onLost: text });
          await call(submit, codec, encodeMessage(submit.method.input, submitBody, codec), adminAuth);
          const keyBody = create(CreateApiKeyRequestSchema, { name: "fuzz", scopes: [text] });
          await call(createKey, codec, encodeMessage(createKey.method.input, keyBody, codec), adminAuth);
          let prev = last;
          for (const r of await auditRecords(last.sequence)) {
            assert.equal(r.prevHash, prev.hash, `record ${r.sequence} does not link to ${prev.sequence}`);
            const c = chained(r);
            assert.equal(
              auditHash(c.prevHash, c.sequence, c),
              r.hash,
              `audit record ${r.sequence} no longer matches its hash: ${describeRecord(r)}`,
            );
            prev = r;
          }
        },
        4 * numRuns,
      );
    });

    it("ListTasks time filters agree with the tasks' creation times, for any Timestamp", async () => {
      // Differential check: the count ListTasks reports for created_before / created_after must
      // match the creation times of the stored tasks, or the Timestamp must be refused as invalid.
      const created = (await allTasks()).map((task) => {
        assert.ok(task.createdAt, task.id);
        return task.createdAt.seconds * 1000n + BigInt(Math.round(task.createdAt.nanos / 1e6));
      });
      const list = rpc("/spage.api.SpageAPI/ListTasks");
      await check(
        1_000_000,
        fc.tuple(fc.boolean(), anySeconds, anyNanos),
        async ([before, s, n]) => {
          const ts = create(TimestampSchema, { seconds: s, nanos: n });
          const req = create(
            ListTasksRequestSchema,
            before ? { limit: 1, createdBefore: ts } : { limit: 1, createdAfter: ts },
          );
          const res = await call(list, "proto", toBinary(ListTasksRequestSchema, req), adminAuth);
          const inRange = s >= -62_135_596_800n && s <= 253_402_300_799n && n >= 0 && n <= 999_999_999;
          if (res.error) {
            assert.ok(!inRange, `a valid Timestamp was refused: ${JSON.stringify(res.error)}`);
            assert.equal(res.error.code, "invalid_argument", JSON.stringify(res.error));
            return;
          }
          const ms = s * 1000n + BigInt(Math.round(n / 1e6));
          const expected = created.filter((c) => (before ? c < ms : c >= ms)).length;
          const { total } = res.messages[0] as ListTasksResponse;
          assert.equal(
            total,
            expected,
            `created_${before ? "before" : "after"} {seconds: ${s}, nanos: ${n}}: ListTasks counted ${total} of ${created.length} tasks, the creation times say ${expected}`,
          );
        },
        4 * numRuns,
      );
    });

    it("a task stays readable in JSON after ReportTaskResult with any started_at / completed_at", async () => {
      // gRPC and Connect binary clients can send Timestamps JSON cannot carry; a task that accepted
      // one must not become unreadable for JSON clients.
      const report = rpc("/spage.api.SpageAPI/ReportTaskResult");
      const get = rpc("/spage.api.SpageAPI/GetTaskStatus");
      const timestamp = fc.option(fc.record({ seconds: anySeconds, nanos: anyNanos }), { nil: undefined });
      const outcome = fc.constantFrom(
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELED,
        TaskStatus.TIMED_OUT,
      );
      let n = 0;
      await check(
        2_000_000,
        fc.tuple(timestamp, timestamp, outcome),
        async ([startedAt, completedAt, status]) => {
          const taskId = `ts-${n++}`;
          await unaryOk("/spage.api.SpageAPI/SubmitTask", { taskId, type: "playbook" });
          const result = create(TaskResultSchema, { taskId, status, startedAt, completedAt });
          const res = await call(report, "proto", toBinary(TaskResultSchema, result), adminAuth);
          if (res.error) {
            assert.equal(res.error.code, "invalid_argument", JSON.stringify(res.error));
            return;
          }
          const read = await call(get, "json", Buffer.from(JSON.stringify({ taskId })), adminAuth);
          assert.equal(read.error, undefined, JSON.stringify(read.error));
        },
        4 * numRuns,
      );
    });
  });
});
