/**
 * JSON requests with an enum value the gateway's schema does not know are refused with
 * invalid_argument and a field violation naming the field, and nothing is stored; unknown field
 * names stay ignored (clients built from a newer contract keep working). Real clients: curl, and
 * connect-node with the Connect protocol's JSON, built from a newer contract that has one more
 * priority (the case of a newer client against this gateway), also over binary.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { clone, create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import {
  EnumValueDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  file_google_protobuf_empty,
  file_google_protobuf_timestamp,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { file_spage_api_access } from "../../gen/spage/api/access_pb.js";
import { file_spage_api_tasks } from "../../gen/spage/api/tasks_pb.js";
import { file_spage_core_common } from "../../gen/spage/core/common_pb.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);

/** SpageAPI as a client built from a newer contract sees it: TaskPriority has URGENT = 5. */
function newerSpageApi(): DescService {
  const common = clone(FileDescriptorProtoSchema, file_spage_core_common.proto);
  const priority = common.enumType.find((e) => e.name === "TaskPriority");
  assert.ok(priority);
  priority.value.push(create(EnumValueDescriptorProtoSchema, { name: "TASK_PRIORITY_URGENT", number: 5 }));
  const files: Record<string, unknown> = {
    "google/protobuf/empty.proto": file_google_protobuf_empty,
    "google/protobuf/timestamp.proto": file_google_protobuf_timestamp,
    "spage/core/common.proto": common,
    "spage/api/access.proto": file_spage_api_access.proto,
  };
  const registry = createFileRegistry(file_spage_api_tasks.proto, (name) => files[name] as never);
  const service = registry.getService("spage.api.SpageAPI");
  assert.ok(service);
  return service;
}

describe("unknown enum values in JSON", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  const total = async () => {
    const res = await fetch(`${server.url}/spage.api.SpageAPI/ListTasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    return ((await res.json()) as { total?: number }).total ?? 0;
  };

  const curl = async (body: string, headers: string[] = []) => {
    const { stdout } = await run("curl", [
      "-s",
      "-w",
      "\\n%{http_code}",
      "-X",
      "POST",
      `${server.url}/spage.api.SpageAPI/SubmitTask`,
      "-H",
      "content-type: application/json",
      ...headers.flatMap((h) => ["-H", h]),
      "--data-binary",
      body,
    ]);
    const i = stdout.lastIndexOf("\n");
    return {
      status: Number(stdout.slice(i + 1)),
      body: JSON.parse(stdout.slice(0, i)) as Record<string, unknown>,
    };
  };

  it("curl: an unknown priority is invalid_argument naming the field, and stores nothing", async () => {
    const before = await total();
    const res = await curl('{"type":"playbook","priority":"NOPE","payload":{"playbook":"site.yml"}}');
    assert.equal(res.status, 400);
    assert.equal(res.body.code, "invalid_argument");
    assert.match(
      String(res.body.message),
      /^invalid priority: unknown value "NOPE" of spage\.core\.TaskPriority/,
    );
    const details = res.body.details as { type: string; debug: { fieldViolations?: { field: string }[] } }[];
    const badRequest = details.find((d) => d.type === "google.rpc.BadRequest");
    assert.deepEqual(
      badRequest?.debug.fieldViolations?.map((v) => v.field),
      ["priority"],
    );
    assert.equal(await total(), before, "nothing was stored");
  });

  it("curl: the same through Connect's own handler (a gzip-compressed body) is answered the same", async () => {
    const plain = await curl('{"type":"playbook","priority":"NOPE"}');
    const { stdout } = await run("sh", [
      "-c",
      `printf '%s' '{"type":"playbook","priority":"NOPE"}' | gzip | curl -s -X POST ${server.url}/spage.api.SpageAPI/SubmitTask -H 'content-type: application/json' -H 'content-encoding: gzip' --data-binary @-`,
    ]);
    assert.deepEqual(JSON.parse(stdout), plain.body);
  });

  it("curl: a known name is accepted, and an unknown field name is ignored", async () => {
    const res = await curl('{"type":"playbook","priority":"TASK_PRIORITY_HIGH","newerField":{"x":1}}');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.success, true);
  });

  it("curl: an unknown value of an enum in a listing filter is refused too", async () => {
    const { stdout } = await run("curl", [
      "-s",
      "-X",
      "POST",
      `${server.url}/spage.api.SpageAPI/ListTasks`,
      "-H",
      "content-type: application/json",
      "-d",
      '{"order":"SIDEWAYS"}',
    ]);
    const body = JSON.parse(stdout) as { code: string; message: string };
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, /^invalid order: unknown value "SIDEWAYS" of spage\.api\.ListOrder/);
  });

  it("connect-node: a newer client's priority is refused over JSON (by name) and over binary (by number)", async () => {
    const service = newerSpageApi();
    for (const useBinaryFormat of [false, true]) {
      const api = createClient(
        service,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat }),
      );
      const before = await total();
      await assert.rejects(
        (api as unknown as { submitTask(req: object): Promise<unknown> }).submitTask({
          type: "playbook",
          priority: 5,
        }),
        (err: unknown) => {
          const ce = ConnectError.from(err);
          assert.equal(ce.code, Code.InvalidArgument, ce.message);
          assert.match(ce.rawMessage, /^invalid priority: /);
          if (!useBinaryFormat) assert.match(ce.rawMessage, /unknown value "TASK_PRIORITY_URGENT"/);
          assert.deepEqual(
            ce.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field)),
            ["priority"],
          );
          return true;
        },
      );
      assert.equal(await total(), before, "nothing was stored");
    }
  });
});
