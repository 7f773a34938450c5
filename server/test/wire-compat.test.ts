/**
 * Wire compatibility with the Spage contract (/work/shared/docs/spage-contract.md).
 *
 * The tables below are transcribed by hand from the contract doc, which is the source of truth; they
 * are deliberately NOT derived from gen/. For every message, enum and service in the doc this test
 * checks the generated descriptors (names, numbers, types, packages, wire paths) and the actual bytes
 * `toBinary` produces (every listed field appears with the wire type its proto type implies).
 *
 * The contract may only grow compatibly: extra fields, enum values and methods with NEW numbers /
 * names are allowed; a listed one that is missing or changed fails, naming the message and field.
 *
 * Transcription notes: where a doc bullet lists fields without a type (e.g. `CancelTaskRequest:
 * task_id=1, reason=2`), the type is the one the doc gives elsewhere for the same role (ids, reasons,
 * tokens, api_key, client_id: string; success: bool), and a bare `map` is map<string,string> as in
 * the fully typed bullets (ExecuteTaskRequest.variables/metadata).
 */
import * as assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  create,
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescService,
  equals,
  fromBinary,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  CancelTaskRequestSchema as ApiCancelTaskRequestSchema,
  CancelTaskResponseSchema as ApiCancelTaskResponseSchema,
  GetTaskStatusRequestSchema as ApiGetTaskStatusRequestSchema,
  GetTaskStatusResponseSchema as ApiGetTaskStatusResponseSchema,
  AuthRequestSchema,
  AuthResponseSchema,
  ListTasksRequestSchema,
  ListTasksResponseSchema,
  SpageAPI,
  SubmitTaskRequestSchema,
  SubmitTaskResponseSchema,
  ValidateTokenRequestSchema,
  ValidateTokenResponseSchema,
} from "../../gen/spage/api/tasks_pb.js";
import {
  ErrorSchema,
  EventSchema,
  HealthStatusSchema,
  MetricsSchema,
  ProgressUpdateSchema,
  TaskMetricsSchema,
  TaskPrioritySchema,
  TaskResultSchema,
  TaskSchema,
  TaskStatusSchema,
} from "../../gen/spage/core/common_pb.js";
import {
  CancelTaskRequestSchema as CoreCancelTaskRequestSchema,
  CancelTaskResponseSchema as CoreCancelTaskResponseSchema,
  GetTaskStatusRequestSchema as CoreGetTaskStatusRequestSchema,
  GetTaskStatusResponseSchema as CoreGetTaskStatusResponseSchema,
  ExecuteTaskRequestSchema,
  ExecuteTaskResponseSchema,
  RegisterTaskRequestSchema,
  RegisterTaskResponseSchema,
  SpageExecution,
} from "../../gen/spage/core/execution_pb.js";
import {
  CancelPlayRequestSchema,
  CancelPlayResponseSchema,
  ExecutePlayRequestSchema,
  ExecutePlayResponseSchema,
  GetPlayStatusRequestSchema,
  GetPlayStatusResponseSchema,
  PlayProgressUpdateSchema,
  PlayStatusSchema,
  PlayTaskResultSchema,
  RegisterPlayCompletionRequestSchema,
  RegisterPlayCompletionResponseSchema,
  RegisterPlayRequestSchema,
  RegisterPlayResponseSchema,
  SpagePlaySchema,
  SpageTaskSchema,
  TaskProgressUpdateSchema,
} from "../../gen/spage/core/play_pb.js";

// ---------------------------------------------------------------------------------------------
// Contract tables (hand-transcribed from the doc)
// ---------------------------------------------------------------------------------------------

/** A field type in the doc's notation. */
type ScalarName = "string" | "bool" | "int32" | "int64" | "double";
type FieldType =
  | ScalarName
  | `enum ${string}`
  | `message ${string}`
  | `repeated message ${string}`
  | `map<string,${ScalarName}>`;

/** [name, number, type] as the doc writes it. */
type FieldRow = readonly [name: string, number: number, type: FieldType];

interface MessageRow {
  readonly typeName: string;
  readonly file: string;
  readonly schema: DescMessage;
  readonly fields: readonly FieldRow[];
}

const COMMON = "spage/core/common.proto";
const EXECUTION = "spage/core/execution.proto";
const TASKS = "spage/api/tasks.proto";

const TIMESTAMP = "message google.protobuf.Timestamp";
const ERROR = "message spage.core.Error";
const TASK = "message spage.core.Task";
const STATUS = "enum spage.core.TaskStatus";
const PRIORITY = "enum spage.core.TaskPriority";
const SMAP = "map<string,string>";
const DMAP = "map<string,double>";
const PLAY = "spage/core/play.proto";
const PLAY_STATUS = "enum spage.core.PlayStatus";

/** ExecutePlayRequest and RegisterPlayRequest have the same fields. */
function playRequest(typeName: string, schema: DescMessage): MessageRow[] {
  return [
    {
      typeName,
      file: PLAY,
      schema,
      fields: [
        ["play_id", 1, "string"],
        ["playbook", 2, "string"],
        ["inventory", 3, "string"],
        ["variables", 4, SMAP],
        ["executor", 5, "string"],
        ["metadata", 6, SMAP],
        ["bundle_id", 7, "string"],
        ["bundle_root_path", 8, "string"],
      ],
    },
  ];
}

/** ExecutePlayResponse and RegisterPlayResponse have the same fields. */
function playResponse(typeName: string, schema: DescMessage): MessageRow[] {
  return [
    {
      typeName,
      file: PLAY,
      schema,
      fields: [
        ["success", 1, "bool"],
        ["play_id", 2, "string"],
        ["error", 3, ERROR],
      ],
    },
  ];
}

const MESSAGES: readonly MessageRow[] = [
  // common.proto (package spage.core)
  {
    typeName: "spage.core.Task",
    file: COMMON,
    schema: TaskSchema,
    fields: [
      ["id", 1, "string"],
      ["type", 2, "string"],
      ["priority", 3, PRIORITY],
      ["payload", 4, SMAP],
      ["status", 5, STATUS],
      ["progress", 6, "double"],
      ["result", 7, SMAP],
      ["error", 8, "string"],
      ["created_at", 9, TIMESTAMP],
      ["updated_at", 10, TIMESTAMP],
      ["started_at", 11, TIMESTAMP],
      ["completed_at", 12, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.TaskResult",
    file: COMMON,
    schema: TaskResultSchema,
    fields: [
      ["task_id", 1, "string"],
      ["status", 2, STATUS],
      ["output", 3, "string"],
      ["error", 4, "string"],
      ["exit_code", 5, "int32"],
      ["duration", 6, "double"],
      ["result", 7, SMAP],
      ["started_at", 8, TIMESTAMP],
      ["completed_at", 9, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.ProgressUpdate",
    file: COMMON,
    schema: ProgressUpdateSchema,
    fields: [
      ["task_id", 1, "string"],
      ["progress", 2, "double"],
      ["message", 3, "string"],
      ["metadata", 4, SMAP],
      ["timestamp", 5, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.Event",
    file: COMMON,
    schema: EventSchema,
    fields: [
      ["id", 1, "string"],
      ["type", 2, "string"],
      ["data", 3, SMAP],
      ["timestamp", 4, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.Error",
    file: COMMON,
    schema: ErrorSchema,
    fields: [
      ["code", 1, "string"],
      ["message", 2, "string"],
      ["details", 3, SMAP],
    ],
  },
  {
    typeName: "spage.core.HealthStatus",
    file: COMMON,
    schema: HealthStatusSchema,
    fields: [
      ["status", 1, "string"],
      ["message", 2, "string"],
      ["details", 3, SMAP],
      ["timestamp", 4, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.Metrics",
    file: COMMON,
    schema: MetricsSchema,
    fields: [
      ["counters", 1, DMAP],
      ["gauges", 2, DMAP],
      ["histograms", 3, DMAP],
      ["timestamp", 4, TIMESTAMP],
    ],
  },

  // execution.proto (package spage.core)
  {
    typeName: "spage.core.ExecuteTaskRequest",
    file: EXECUTION,
    schema: ExecuteTaskRequestSchema,
    fields: [
      ["task_id", 1, "string"],
      ["playbook", 2, "string"],
      ["inventory", 3, "string"],
      ["variables", 4, SMAP],
      ["engine", 5, "string"],
      ["priority", 6, PRIORITY],
      ["metadata", 7, SMAP],
    ],
  },
  {
    typeName: "spage.core.ExecuteTaskResponse",
    file: EXECUTION,
    schema: ExecuteTaskResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["task_id", 2, "string"],
      ["error", 3, ERROR],
    ],
  },
  {
    typeName: "spage.core.CancelTaskRequest",
    file: EXECUTION,
    schema: CoreCancelTaskRequestSchema,
    fields: [
      ["task_id", 1, "string"],
      ["reason", 2, "string"],
    ],
  },
  {
    typeName: "spage.core.CancelTaskResponse",
    file: EXECUTION,
    schema: CoreCancelTaskResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.core.GetTaskStatusRequest",
    file: EXECUTION,
    schema: CoreGetTaskStatusRequestSchema,
    fields: [["task_id", 1, "string"]],
  },
  {
    typeName: "spage.core.GetTaskStatusResponse",
    file: EXECUTION,
    schema: CoreGetTaskStatusResponseSchema,
    fields: [
      ["task", 1, TASK],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.core.RegisterTaskRequest",
    file: EXECUTION,
    schema: RegisterTaskRequestSchema,
    // No priority field (doc): 6 is metadata here, unlike ExecuteTaskRequest.
    fields: [
      ["task_id", 1, "string"],
      ["playbook", 2, "string"],
      ["inventory", 3, "string"],
      ["variables", 4, SMAP],
      ["engine", 5, "string"],
      ["metadata", 6, SMAP],
    ],
  },
  {
    typeName: "spage.core.RegisterTaskResponse",
    file: EXECUTION,
    schema: RegisterTaskResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["task_id", 2, "string"],
      ["error", 3, ERROR],
    ],
  },

  // The play era (doc: "The current upstream contract"), package spage.core. Upstream's play-era
  // TaskResult clashes by name with the task era's; ours is PlayTaskResult, identical on the wire.
  ...playRequest("spage.core.ExecutePlayRequest", ExecutePlayRequestSchema),
  ...playResponse("spage.core.ExecutePlayResponse", ExecutePlayResponseSchema),
  ...playRequest("spage.core.RegisterPlayRequest", RegisterPlayRequestSchema),
  ...playResponse("spage.core.RegisterPlayResponse", RegisterPlayResponseSchema),
  {
    typeName: "spage.core.CancelPlayRequest",
    file: PLAY,
    schema: CancelPlayRequestSchema,
    fields: [
      ["play_id", 1, "string"],
      ["reason", 2, "string"],
    ],
  },
  {
    typeName: "spage.core.CancelPlayResponse",
    file: PLAY,
    schema: CancelPlayResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.core.GetPlayStatusRequest",
    file: PLAY,
    schema: GetPlayStatusRequestSchema,
    fields: [["play_id", 1, "string"]],
  },
  {
    typeName: "spage.core.GetPlayStatusResponse",
    file: PLAY,
    schema: GetPlayStatusResponseSchema,
    fields: [
      ["play", 1, "message spage.core.SpagePlay"],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.core.RegisterPlayCompletionRequest",
    file: PLAY,
    schema: RegisterPlayCompletionRequestSchema,
    fields: [
      ["play_id", 1, "string"],
      ["status", 2, PLAY_STATUS],
      ["error", 3, "string"],
    ],
  },
  {
    typeName: "spage.core.RegisterPlayCompletionResponse",
    file: PLAY,
    schema: RegisterPlayCompletionResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.core.PlayProgressUpdate",
    file: PLAY,
    schema: PlayProgressUpdateSchema,
    fields: [
      ["play_id", 1, "string"],
      ["status", 2, PLAY_STATUS],
      ["error", 3, "string"],
      ["output", 4, "string"],
      ["timestamp", 5, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.TaskProgressUpdate",
    file: PLAY,
    schema: TaskProgressUpdateSchema,
    fields: [
      ["play_id", 1, "string"],
      ["task_id", 2, "int32"],
      ["task_name", 3, "string"],
      ["result", 4, "message spage.core.PlayTaskResult"],
      ["timestamp", 5, TIMESTAMP],
    ],
  },
  {
    // Upstream: TaskResult (play era).
    typeName: "spage.core.PlayTaskResult",
    file: PLAY,
    schema: PlayTaskResultSchema,
    fields: [
      ["task_id", 1, "int32"],
      ["task_name", 2, "string"],
      ["status", 3, STATUS],
      ["output", 4, "string"],
      ["error", 5, "string"],
      ["metrics", 6, "message spage.core.TaskMetrics"],
      ["started_at", 7, TIMESTAMP],
      ["completed_at", 8, TIMESTAMP],
    ],
  },
  {
    typeName: "spage.core.TaskMetrics",
    file: COMMON,
    schema: TaskMetricsSchema,
    fields: [
      ["duration", 1, "double"],
      ["memory_alloc", 2, "double"],
      ["memory_heap", 3, "double"],
      ["memory_sys", 4, "double"],
      ["memory_heap_sys", 5, "double"],
      ["gc_cycles", 6, "double"],
      ["goroutines", 7, "double"],
      ["cpu_count", 8, "double"],
    ],
  },
  {
    typeName: "spage.core.SpagePlay",
    file: PLAY,
    schema: SpagePlaySchema,
    fields: [
      ["id", 1, "string"],
      ["playbook", 2, "string"],
      ["inventory", 3, "string"],
      ["hostname", 4, "string"],
      ["variables", 5, SMAP],
      ["status", 6, PLAY_STATUS],
      ["tasks", 7, "repeated message spage.core.SpageTask"],
      ["created_at", 8, TIMESTAMP],
      ["updated_at", 9, TIMESTAMP],
      ["started_at", 10, TIMESTAMP],
      ["completed_at", 11, TIMESTAMP],
      ["error", 12, "string"],
    ],
  },
  {
    typeName: "spage.core.SpageTask",
    file: PLAY,
    schema: SpageTaskSchema,
    fields: [
      ["id", 1, "int32"],
      ["name", 2, "string"],
      ["status", 3, STATUS],
      ["created_at", 4, TIMESTAMP],
      ["updated_at", 5, TIMESTAMP],
      ["started_at", 6, TIMESTAMP],
      ["completed_at", 7, TIMESTAMP],
      ["output", 8, "string"],
      ["error", 9, "string"],
    ],
  },

  // tasks.proto (package spage.api)
  {
    typeName: "spage.api.SubmitTaskRequest",
    file: TASKS,
    schema: SubmitTaskRequestSchema,
    fields: [
      ["task_id", 1, "string"],
      ["type", 2, "string"],
      ["priority", 3, PRIORITY],
      ["payload", 4, SMAP],
      ["metadata", 5, SMAP],
    ],
  },
  {
    typeName: "spage.api.SubmitTaskResponse",
    file: TASKS,
    schema: SubmitTaskResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["task_id", 2, "string"],
      ["error", 3, ERROR],
    ],
  },
  {
    typeName: "spage.api.GetTaskStatusRequest",
    file: TASKS,
    schema: ApiGetTaskStatusRequestSchema,
    fields: [["task_id", 1, "string"]],
  },
  {
    typeName: "spage.api.GetTaskStatusResponse",
    file: TASKS,
    schema: ApiGetTaskStatusResponseSchema,
    fields: [
      ["task", 1, TASK],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.api.CancelTaskRequest",
    file: TASKS,
    schema: ApiCancelTaskRequestSchema,
    fields: [
      ["task_id", 1, "string"],
      ["reason", 2, "string"],
    ],
  },
  {
    typeName: "spage.api.CancelTaskResponse",
    file: TASKS,
    schema: ApiCancelTaskResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["error", 2, ERROR],
    ],
  },
  {
    typeName: "spage.api.ListTasksRequest",
    file: TASKS,
    schema: ListTasksRequestSchema,
    fields: [
      ["limit", 1, "int32"],
      ["offset", 2, "int32"],
      ["status", 3, "string"],
      ["type", 4, "string"],
    ],
  },
  {
    typeName: "spage.api.ListTasksResponse",
    file: TASKS,
    schema: ListTasksResponseSchema,
    fields: [
      ["tasks", 1, "repeated message spage.core.Task"],
      ["total", 2, "int32"],
      ["error", 3, ERROR],
    ],
  },
  {
    typeName: "spage.api.AuthRequest",
    file: TASKS,
    schema: AuthRequestSchema,
    fields: [
      ["api_key", 1, "string"],
      ["client_id", 2, "string"],
      ["metadata", 3, SMAP],
    ],
  },
  {
    typeName: "spage.api.AuthResponse",
    file: TASKS,
    schema: AuthResponseSchema,
    fields: [
      ["success", 1, "bool"],
      ["token", 2, "string"],
      ["expires_at", 3, "int64"],
      ["permissions", 4, SMAP],
      ["error", 5, ERROR],
    ],
  },
  {
    typeName: "spage.api.ValidateTokenRequest",
    file: TASKS,
    schema: ValidateTokenRequestSchema,
    fields: [["token", 1, "string"]],
  },
  {
    typeName: "spage.api.ValidateTokenResponse",
    file: TASKS,
    schema: ValidateTokenResponseSchema,
    fields: [
      ["valid", 1, "bool"],
      ["client_id", 2, "string"],
      ["permissions", 3, SMAP],
      ["expires_at", 4, "int64"],
      ["error", 5, ERROR],
    ],
  },
];

interface EnumRow {
  readonly typeName: string;
  readonly file: string;
  readonly schema: DescEnum;
  readonly prefix: string;
  /** [suffix, number] */
  readonly values: readonly (readonly [string, number])[];
  /** Values added later must be numbered at least this. */
  readonly minNewNumber: number;
}

const ENUMS: readonly EnumRow[] = [
  {
    typeName: "spage.core.TaskStatus",
    file: COMMON,
    schema: TaskStatusSchema,
    prefix: "TASK_STATUS_",
    values: [
      ["UNSPECIFIED", 0],
      ["PENDING", 1],
      ["RUNNING", 2],
      ["COMPLETED", 3],
      ["FAILED", 4],
      ["CANCELED", 5],
      ["SKIPPED", 6], // later upstream addition; 6 is reserved for this meaning
    ],
    minNewNumber: 7,
  },
  {
    typeName: "spage.core.TaskPriority",
    file: COMMON,
    schema: TaskPrioritySchema,
    prefix: "TASK_PRIORITY_",
    values: [
      ["UNSPECIFIED", 0],
      ["LOW", 1],
      ["NORMAL", 2],
      ["HIGH", 3],
      ["CRITICAL", 4],
    ],
    minNewNumber: 5,
  },
  {
    typeName: "spage.core.PlayStatus",
    file: PLAY,
    schema: PlayStatusSchema,
    prefix: "PLAY_STATUS_",
    values: [
      ["UNSPECIFIED", 0],
      ["PENDING", 1],
      ["RUNNING", 2],
      ["COMPLETED", 3],
      ["FAILED", 4],
      ["CANCELED", 5],
    ],
    minNewNumber: 6,
  },
];

type MethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";
/** [name, input type, output type, kind] */
type MethodRow = readonly [name: string, input: string, output: string, kind: MethodKind];

interface ServiceRow {
  readonly typeName: string;
  readonly file: string;
  readonly pkg: string;
  readonly service: DescService;
  readonly methods: readonly MethodRow[];
}

const EMPTY = "google.protobuf.Empty";

const SERVICES: readonly ServiceRow[] = [
  {
    typeName: "spage.core.SpageExecution",
    file: EXECUTION,
    pkg: "spage.core",
    service: SpageExecution,
    methods: [
      ["ExecuteTask", "spage.core.ExecuteTaskRequest", "spage.core.ExecuteTaskResponse", "unary"],
      ["CancelTask", "spage.core.CancelTaskRequest", "spage.core.CancelTaskResponse", "unary"],
      ["GetTaskStatus", "spage.core.GetTaskStatusRequest", "spage.core.GetTaskStatusResponse", "unary"],
      ["RegisterTask", "spage.core.RegisterTaskRequest", "spage.core.RegisterTaskResponse", "unary"],
      ["StreamProgress", "spage.core.ProgressUpdate", "spage.core.ProgressUpdate", "bidi_streaming"],
      ["HealthCheck", EMPTY, "spage.core.HealthStatus", "unary"],
      ["GetMetrics", EMPTY, "spage.core.Metrics", "unary"],
      // The play era, on the same service.
      ["ExecutePlay", "spage.core.ExecutePlayRequest", "spage.core.ExecutePlayResponse", "unary"],
      ["CancelPlay", "spage.core.CancelPlayRequest", "spage.core.CancelPlayResponse", "unary"],
      ["GetPlayStatus", "spage.core.GetPlayStatusRequest", "spage.core.GetPlayStatusResponse", "unary"],
      ["RegisterPlay", "spage.core.RegisterPlayRequest", "spage.core.RegisterPlayResponse", "unary"],
      [
        "RegisterPlayCompletion",
        "spage.core.RegisterPlayCompletionRequest",
        "spage.core.RegisterPlayCompletionResponse",
        "unary",
      ],
      [
        "StreamTaskProgress",
        "spage.core.TaskProgressUpdate",
        "spage.core.TaskProgressUpdate",
        "bidi_streaming",
      ],
      [
        "StreamPlayProgress",
        "spage.core.PlayProgressUpdate",
        "spage.core.PlayProgressUpdate",
        "bidi_streaming",
      ],
    ],
  },
  {
    typeName: "spage.api.SpageAPI",
    file: TASKS,
    pkg: "spage.api",
    service: SpageAPI,
    methods: [
      ["SubmitTask", "spage.api.SubmitTaskRequest", "spage.api.SubmitTaskResponse", "unary"],
      ["GetTaskStatus", "spage.api.GetTaskStatusRequest", "spage.api.GetTaskStatusResponse", "unary"],
      ["CancelTask", "spage.api.CancelTaskRequest", "spage.api.CancelTaskResponse", "unary"],
      ["ListTasks", "spage.api.ListTasksRequest", "spage.api.ListTasksResponse", "unary"],
      ["StreamEvents", "spage.core.Event", "spage.core.Event", "bidi_streaming"],
      ["Authenticate", "spage.api.AuthRequest", "spage.api.AuthResponse", "unary"],
      ["ValidateToken", "spage.api.ValidateTokenRequest", "spage.api.ValidateTokenResponse", "unary"],
      ["HealthCheck", EMPTY, "spage.core.HealthStatus", "unary"],
      ["GetMetrics", EMPTY, "spage.core.Metrics", "unary"],
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const SCALARS: Record<ScalarName, ScalarType> = {
  string: ScalarType.STRING,
  bool: ScalarType.BOOL,
  int32: ScalarType.INT32,
  int64: ScalarType.INT64,
  double: ScalarType.DOUBLE,
};

type ParsedType =
  | { kind: "scalar"; scalar: ScalarName }
  | { kind: "enum"; typeName: string }
  | { kind: "message"; typeName: string }
  | { kind: "repeated_message"; typeName: string }
  | { kind: "map"; value: ScalarName };

function parseType(t: FieldType): ParsedType {
  if (t.startsWith("repeated message ")) return { kind: "repeated_message", typeName: t.slice(17) };
  if (t.startsWith("message ")) return { kind: "message", typeName: t.slice(8) };
  if (t.startsWith("enum ")) return { kind: "enum", typeName: t.slice(5) };
  const m = /^map<string,(\w+)>$/.exec(t);
  if (m) return { kind: "map", value: m[1] as ScalarName };
  return { kind: "scalar", scalar: t as ScalarName };
}

/** The wire type a field of this proto type must use on the wire. */
function expectedWireType(p: ParsedType): WireType {
  switch (p.kind) {
    case "scalar":
      if (p.scalar === "double") return WireType.Bit64;
      if (p.scalar === "string") return WireType.LengthDelimited;
      return WireType.Varint;
    case "enum":
      return WireType.Varint;
    default:
      return WireType.LengthDelimited;
  }
}

function scalarWireType(s: ScalarName): WireType {
  return expectedWireType({ kind: "scalar", scalar: s });
}

const ROWS_BY_TYPE = new Map(MESSAGES.map((m) => [m.typeName, m]));

function label(msg: string, field?: FieldRow): string {
  return field ? `${msg}.${field[0]} (= ${field[1]}: ${field[2]})` : msg;
}

/** Asserts the generated descriptor field matches the table row exactly. */
function checkField(msg: MessageRow, row: FieldRow): void {
  const [name, number, type] = row;
  const where = label(msg.typeName, row);
  const f: DescField | undefined = msg.schema.fields.find((x) => x.number === number);
  assert.ok(f, `${where}: field number ${number} is missing from the generated descriptor`);
  assert.equal(
    f.name,
    name,
    `${where}: field number ${number} is named "${f.name}", contract says "${name}"`,
  );
  const byName = msg.schema.fields.find((x) => x.name === name);
  assert.equal(byName?.number, number, `${where}: field "${name}" has number ${byName?.number}`);
  const p = parseType(type);
  switch (p.kind) {
    case "scalar":
      assert.equal(f.fieldKind, "scalar", `${where}: generated fieldKind is "${f.fieldKind}", want scalar`);
      assert.equal(
        f.scalar,
        SCALARS[p.scalar],
        `${where}: generated scalar type is ${ScalarType[f.scalar ?? -1]}, want ${p.scalar}`,
      );
      break;
    case "enum":
      assert.equal(f.fieldKind, "enum", `${where}: generated fieldKind is "${f.fieldKind}", want enum`);
      assert.equal(f.enum?.typeName, p.typeName, `${where}: generated enum type is ${f.enum?.typeName}`);
      break;
    case "message":
      assert.equal(f.fieldKind, "message", `${where}: generated fieldKind is "${f.fieldKind}", want message`);
      assert.equal(
        f.message?.typeName,
        p.typeName,
        `${where}: generated message type is ${f.message?.typeName}`,
      );
      break;
    case "repeated_message":
      assert.equal(f.fieldKind, "list", `${where}: generated fieldKind is "${f.fieldKind}", want list`);
      assert.equal(f.listKind, "message", `${where}: generated listKind is "${f.listKind}", want message`);
      assert.equal(
        f.message?.typeName,
        p.typeName,
        `${where}: generated element type is ${f.message?.typeName}`,
      );
      break;
    case "map":
      assert.equal(f.fieldKind, "map", `${where}: generated fieldKind is "${f.fieldKind}", want map`);
      assert.equal(f.mapKey, ScalarType.STRING, `${where}: generated map key is ${ScalarType[f.mapKey]}`);
      assert.equal(f.mapKind, "scalar", `${where}: generated map value kind is "${f.mapKind}"`);
      assert.equal(
        f.scalar,
        SCALARS[p.value],
        `${where}: generated map value is ${ScalarType[f.scalar ?? -1]}, want ${p.value}`,
      );
      break;
  }
  assert.equal(f.oneof, undefined, `${where}: field must not be moved into a oneof`);
}

/** A non-default value for a field of this type, in `create` init shape. */
function sampleValue(row: FieldRow, depth: number): unknown {
  const [name, number, type] = row;
  const p = parseType(type);
  switch (p.kind) {
    case "scalar":
      switch (p.scalar) {
        case "string":
          return `${name}-${number}`;
        case "bool":
          return true;
        case "int32":
          return 1000 + number;
        case "int64":
          return 1_700_000_000_000n + BigInt(number);
        case "double":
          return number + 0.25;
      }
      break;
    case "enum":
      return 2;
    case "message":
      return sampleMessage(p.typeName, depth);
    case "repeated_message":
      return [sampleMessage(p.typeName, depth), sampleMessage(p.typeName, depth)];
    case "map":
      return p.value === "double" ? { a: 1.5, b: -2.25 } : { k1: "v1", k2: "v2" };
  }
  throw new Error(`unreachable: ${type}`);
}

function sampleMessage(typeName: string, depth: number): Record<string, unknown> {
  if (typeName === "google.protobuf.Timestamp") return { seconds: 1_700_000_000n, nanos: 123_000_000 };
  const row = ROWS_BY_TYPE.get(typeName);
  assert.ok(row, `no contract row for nested message ${typeName}`);
  return sampleInit(row, depth + 1);
}

/** An init object for `create` with every listed field set to a non-default value. */
function sampleInit(msg: MessageRow, depth = 0): Record<string, unknown> {
  assert.ok(depth < 4, `${msg.typeName}: sample nesting too deep`);
  const init: Record<string, unknown> = {};
  for (const row of msg.fields) {
    const f = msg.schema.fields.find((x) => x.number === row[1]);
    assert.ok(f, `${label(msg.typeName, row)}: field number ${row[1]} is missing`);
    init[f.localName] = sampleValue(row, depth);
  }
  return init;
}

interface WireOccurrence {
  readonly wireType: WireType;
  readonly data: Uint8Array;
}

/** Walks encoded bytes and groups every top-level field occurrence by field number. */
function walk(bytes: Uint8Array): Map<number, WireOccurrence[]> {
  const seen = new Map<number, WireOccurrence[]>();
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    const data = reader.skip(wireType, fieldNo);
    const list = seen.get(fieldNo) ?? [];
    list.push({ wireType, data });
    seen.set(fieldNo, list);
  }
  return seen;
}

/** Strips the length prefix of a length-delimited value skipped by BinaryReader. */
function payloadOf(data: Uint8Array): Uint8Array {
  const r = new BinaryReader(data);
  return r.bytes();
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("contract tables are complete", () => {
  test("every message named in the doc has a row, distinct types stay distinct", () => {
    const names = MESSAGES.map((m) => m.typeName);
    assert.equal(new Set(names).size, names.length, "duplicate message rows");
    assert.equal(names.length, 43);
    assert.notEqual(
      CoreGetTaskStatusRequestSchema,
      ApiGetTaskStatusRequestSchema,
      "spage.core.GetTaskStatusRequest and spage.api.GetTaskStatusRequest must be distinct types",
    );
    assert.notEqual(CoreCancelTaskRequestSchema, ApiCancelTaskRequestSchema);
  });
});

describe("messages: descriptor matches the contract", () => {
  for (const msg of MESSAGES) {
    test(msg.typeName, () => {
      assert.equal(msg.schema.typeName, msg.typeName, `${msg.typeName}: generated type name differs`);
      assert.equal(msg.schema.file.proto.name, msg.file, `${msg.typeName}: declared in the wrong file`);
      const numbers = msg.fields.map((r) => r[1]);
      assert.equal(new Set(numbers).size, numbers.length, `${msg.typeName}: table has duplicate numbers`);
      for (const row of msg.fields) checkField(msg, row);
    });
  }
});

describe("messages: encoded bytes match the contract", () => {
  for (const msg of MESSAGES) {
    test(msg.typeName, () => {
      const message = create(msg.schema, sampleInit(msg));
      const bytes = toBinary(msg.schema, message);
      const seen = walk(bytes);
      for (const row of msg.fields) {
        const where = label(msg.typeName, row);
        const p = parseType(row[2]);
        const occurrences = seen.get(row[1]);
        assert.ok(occurrences?.length, `${where}: field number ${row[1]} does not appear on the wire`);
        const want = expectedWireType(p);
        for (const o of occurrences) {
          assert.equal(
            o.wireType,
            want,
            `${where}: encoded with wire type ${WireType[o.wireType]}, want ${WireType[want]}`,
          );
        }
        if (p.kind === "map") {
          assert.equal(occurrences.length, 2, `${where}: expected one wire entry per map key`);
          for (const o of occurrences) {
            const entry = walk(payloadOf(o.data));
            assert.equal(entry.get(1)?.[0]?.wireType, WireType.LengthDelimited, `${where}: map entry key`);
            assert.equal(entry.get(2)?.[0]?.wireType, scalarWireType(p.value), `${where}: map entry value`);
          }
        }
        if (p.kind === "repeated_message") {
          assert.equal(occurrences.length, 2, `${where}: expected one wire record per element`);
        }
      }
      const decoded = fromBinary(msg.schema, bytes);
      assert.ok(equals(msg.schema, decoded, message), `${msg.typeName}: fromBinary(toBinary(m)) != m`);
      // Every listed field survived the round trip with a non-default value.
      const reencoded = walk(toBinary(msg.schema, decoded));
      for (const row of msg.fields) {
        assert.ok(reencoded.get(row[1])?.length, `${label(msg.typeName, row)}: lost in the round trip`);
      }
    });
  }
});

describe("enums match the contract", () => {
  for (const e of ENUMS) {
    test(e.typeName, () => {
      assert.equal(e.schema.typeName, e.typeName, `${e.typeName}: generated type name differs`);
      assert.equal(e.schema.file.proto.name, e.file, `${e.typeName}: declared in the wrong file`);
      for (const [suffix, number] of e.values) {
        const full = `${e.prefix}${suffix}`;
        const byNumber = e.schema.values.filter((v) => v.number === number);
        assert.equal(byNumber.length, 1, `${e.typeName}.${full}: want exactly one value numbered ${number}`);
        assert.equal(
          byNumber[0]?.name,
          full,
          `${e.typeName}: value ${number} is named "${byNumber[0]?.name}"`,
        );
        const byName = e.schema.values.find((v) => v.name === full);
        assert.equal(byName?.number, number, `${e.typeName}.${full}: numbered ${byName?.number}`);
      }
      const listed = new Set(e.values.map(([s]) => `${e.prefix}${s}`));
      for (const v of e.schema.values) {
        assert.ok(v.name.startsWith(e.prefix), `${e.typeName}.${v.name}: must carry prefix ${e.prefix}`);
        if (!listed.has(v.name)) {
          assert.ok(
            v.number >= e.minNewNumber,
            `${e.typeName}.${v.name} = ${v.number}: new values must be numbered >= ${e.minNewNumber}`,
          );
        }
      }
    });
  }
});

describe("services match the contract", () => {
  for (const s of SERVICES) {
    test(s.typeName, () => {
      assert.equal(s.service.typeName, s.typeName, `${s.typeName}: generated service name differs`);
      assert.equal(s.service.file.proto.package, s.pkg, `${s.typeName}: proto package differs`);
      assert.equal(s.service.file.proto.name, s.file, `${s.typeName}: declared in the wrong file`);
      for (const [name, input, output, kind] of s.methods) {
        const where = `${s.typeName}/${name}`;
        const m = s.service.methods.find((x) => x.name === name);
        assert.ok(m, `${where}: method is missing`);
        assert.equal(`/${s.service.typeName}/${m.name}`, `/${s.typeName}/${name}`, `${where}: wire path`);
        assert.equal(m.input.typeName, input, `${where}: input type is ${m.input.typeName}, want ${input}`);
        assert.equal(
          m.output.typeName,
          output,
          `${where}: output type is ${m.output.typeName}, want ${output}`,
        );
        assert.equal(m.methodKind, kind, `${where}: kind is ${m.methodKind}, want ${kind}`);
      }
    });
  }

  test("wire paths", () => {
    const paths = SERVICES.flatMap((s) => s.service.methods.map((m) => `/${s.service.typeName}/${m.name}`));
    for (const want of [
      "/spage.core.SpageExecution/ExecuteTask",
      "/spage.core.SpageExecution/CancelTask",
      "/spage.core.SpageExecution/GetTaskStatus",
      "/spage.core.SpageExecution/RegisterTask",
      "/spage.core.SpageExecution/StreamProgress",
      "/spage.core.SpageExecution/HealthCheck",
      "/spage.core.SpageExecution/GetMetrics",
      "/spage.api.SpageAPI/SubmitTask",
      "/spage.api.SpageAPI/GetTaskStatus",
      "/spage.api.SpageAPI/CancelTask",
      "/spage.api.SpageAPI/ListTasks",
      "/spage.api.SpageAPI/StreamEvents",
      "/spage.api.SpageAPI/Authenticate",
      "/spage.api.SpageAPI/ValidateToken",
      "/spage.api.SpageAPI/HealthCheck",
      "/spage.api.SpageAPI/GetMetrics",
    ]) {
      assert.ok(paths.includes(want), `wire path ${want} is not served by the generated services`);
    }
  });
});

describe("files and packages match the contract", () => {
  test("file names and packages", () => {
    const files = [
      [TaskSchema.file, COMMON, "spage.core"],
      [SpageExecution.file, EXECUTION, "spage.core"],
      [SpagePlaySchema.file, PLAY, "spage.core"],
      [SpageAPI.file, TASKS, "spage.api"],
    ] as const;
    for (const [file, name, pkg] of files) {
      assert.equal(file.proto.name, name, `file ${name}: generated file name is ${file.proto.name}`);
      assert.equal(file.proto.package, pkg, `file ${name}: package is ${file.proto.package}, want ${pkg}`);
    }
    for (const msg of MESSAGES) {
      const pkg = msg.file === TASKS ? "spage.api" : "spage.core";
      assert.equal(msg.schema.file.proto.package, pkg, `${msg.typeName}: package differs`);
    }
  });
});
