/**
 * Request validation for everything that creates or changes a task. Each check names the field in
 * its violation, so clients (and the dashboard's forms) can show the message next to the input.
 */
import { hash } from "node:crypto";
import { TaskPriority } from "../../../gen/spage/core/common_pb.js";
import { type FieldViolation, InvalidArgumentError } from "./errors.js";

/** Size bounds of task fields. */
export const taskLimits = {
  idMaxLength: 128,
  typeMaxLength: 128,
  mapMaxEntries: 64,
  keyMaxLength: 128,
  valueMaxBytes: 64 * 1024,
  mapMaxBytes: 1024 * 1024,
  reasonMaxLength: 1024,
} as const;

const idPattern = /^[A-Za-z0-9._:-]+$/;
const printable = /^[^\p{Cc}]+$/u;

/** Collects violations and throws them together. */
export class Violations {
  constructor(
    private readonly list: FieldViolation[] = [],
    private readonly prefix = "",
  ) {}

  add(field: string, description: string): void {
    this.list.push({ field: this.prefix + field, description });
  }

  /** Violations added through the result name their field under `prefix` (e.g. `tasks[2].`). */
  within(prefix: string): Violations {
    return new Violations(this.list, this.prefix + prefix);
  }

  /** Whether nothing was added. */
  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Throws InvalidArgumentError if anything was added. */
  throwIfAny(): void {
    if (this.list.length > 0) throw new InvalidArgumentError(this.list);
  }
}

/** Whether `id` is a well-formed task id. */
export function isTaskId(id: string): boolean {
  return id !== "" && id.length <= taskLimits.idMaxLength && idPattern.test(id);
}

/** Checks a task id. `required` false allows the empty string (an id will be generated). */
export function checkTaskId(v: Violations, field: string, id: string, required: boolean): void {
  if (id === "") {
    if (required) v.add(field, "is required");
    return;
  }
  if (id.length > taskLimits.idMaxLength) {
    v.add(field, `must be at most ${taskLimits.idMaxLength} characters (got ${id.length})`);
  } else if (!idPattern.test(id)) {
    v.add(field, "may contain only letters, digits and . _ : -");
  }
}

/** Checks a task type: required, bounded, printable. */
export function checkTaskType(v: Violations, field: string, type: string): void {
  if (type.trim() === "") v.add(field, 'is required (e.g. "playbook")');
  else if (type.length > taskLimits.typeMaxLength)
    v.add(field, `must be at most ${taskLimits.typeMaxLength} characters (got ${type.length})`);
  else if (!printable.test(type)) v.add(field, "must not contain control characters");
}

/** Checks a priority enum value; 0 (unspecified) is allowed and means NORMAL. */
export function checkPriority(v: Violations, field: string, priority: number): void {
  if (!(priority in TaskPriority) || !Number.isInteger(priority) || priority < 0 || priority > 4) {
    v.add(field, `must be one of LOW, NORMAL, HIGH, CRITICAL (got ${priority})`);
  }
}

/** Checks a string map's entry count, key and value sizes. */
export function checkStringMap(v: Violations, field: string, map: Readonly<Record<string, string>>): void {
  const keys = Object.keys(map);
  if (keys.length > taskLimits.mapMaxEntries) {
    v.add(field, `must have at most ${taskLimits.mapMaxEntries} entries (got ${keys.length})`);
    return;
  }
  let total = 0;
  for (const key of keys) {
    const value = map[key] ?? "";
    if (key === "") v.add(field, "keys must not be empty");
    else if (key.length > taskLimits.keyMaxLength)
      v.add(`${field}[${clip(key, 32)}…]`, `key must be at most ${taskLimits.keyMaxLength} characters`);
    const bytes = Buffer.byteLength(value);
    if (bytes > taskLimits.valueMaxBytes)
      v.add(
        `${field}[${clip(key, 64)}]`,
        `value must be at most ${taskLimits.valueMaxBytes} bytes (got ${bytes})`,
      );
    total += bytes + key.length;
  }
  if (total > taskLimits.mapMaxBytes) v.add(field, `must be at most ${taskLimits.mapMaxBytes} bytes in all`);
}

/** Longest run-time limit a task may ask for: 7 days. */
export const maxTimeoutSeconds = 7 * 24 * 3600;

/** Checks a run-time limit in seconds: 0 (none) up to 7 days. */
export function checkTimeout(v: Violations, field: string, seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > maxTimeoutSeconds) {
    v.add(field, `must be between 0 (no limit) and ${maxTimeoutSeconds} seconds (got ${seconds})`);
  }
}

/** Attempts a task gets under the requeue policy when it does not say. */
export const defaultMaxAttempts = 3;

/** Checks the lost-task policy and its attempt limit. */
export function checkLostPolicy(v: Violations, onLost: string, maxAttempts: number): void {
  if (onLost !== "" && onLost !== "fail" && onLost !== "requeue") {
    v.add("on_lost", `must be "fail" or "requeue" (got "${clip(onLost, 32)}")`);
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 0 || maxAttempts > 20) {
    v.add("max_attempts", `must be between 1 and 20, or 0 for ${defaultMaxAttempts} (got ${maxAttempts})`);
  }
}

/** Checks a free-text reason. */
export function checkReason(v: Violations, field: string, reason: string): void {
  if (reason.length > taskLimits.reasonMaxLength)
    v.add(field, `must be at most ${taskLimits.reasonMaxLength} characters (got ${reason.length})`);
}

/** Normalises a priority: unspecified becomes NORMAL. */
export function effectivePriority(p: TaskPriority): TaskPriority {
  return p === TaskPriority.UNSPECIFIED ? TaskPriority.NORMAL : p;
}

/** The fields of a submitted task that its request fingerprint covers. */
export interface SubmittedFields {
  readonly type: string;
  readonly priority: TaskPriority;
  readonly payload: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
  readonly onLost: string;
  readonly maxAttempts: number;
  /** Graph fields: covered only when set, so fingerprints of tasks without them stay as they were. */
  readonly dependsOn?: readonly string[];
  readonly workflowId?: string;
  readonly retryOf?: string;
  readonly limitHosts?: readonly string[];
}

/** The fingerprint of a submit request, from its fields (as given, or as stored on the task). */
export function submitFingerprint(f: SubmittedFields): string {
  return requestFingerprint({
    type: f.type,
    priority: f.priority,
    payload: f.payload,
    metadata: f.metadata,
    timeoutSeconds: f.timeoutSeconds,
    onLost: f.onLost,
    maxAttempts: f.maxAttempts,
    ...(f.dependsOn && f.dependsOn.length > 0 ? { dependsOn: f.dependsOn } : {}),
    ...(f.workflowId ? { workflowId: f.workflowId } : {}),
    ...(f.retryOf ? { retryOf: f.retryOf } : {}),
    ...(f.limitHosts && f.limitHosts.length > 0 ? { limitHosts: f.limitHosts } : {}),
  });
}

/** A stable fingerprint of a task request, used to tell an idempotent retry from a conflicting one. */
export function requestFingerprint(parts: Record<string, unknown>): string {
  return hash("sha256", stableJson(parts), "hex");
}

/** Characters JSON.stringify would escape in a string. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters JSON escapes
const needsEscape = /[\u0000-\u001f"\\\ud800-\udfff]/;
const quoted = (s: string): string => (needsEscape.test(s) ? JSON.stringify(s) : `"${s}"`);

/**
 * JSON with object keys sorted, so equal values give equal text whatever their key order; an
 * undefined value is written as null. Built by hand: the fingerprint is taken on every submit.
 */
function stableJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return quoted(value);
    case "number":
      return Number.isFinite(value) ? String(value) : "null";
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      return JSON.stringify(value) ?? "null";
  }
  if (value === null) return "null";
  let out: string;
  if (Array.isArray(value)) {
    out = "[";
    for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + stableJson(value[i]);
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  out = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    out += `${i === 0 ? "" : ","}${quoted(k)}:${stableJson(obj[k])}`;
  }
  return `${out}}`;
}

/** Earliest and latest instants a google.protobuf.Timestamp may hold (0001-01-01 to 9999-12-31). */
const minTimestampSeconds = -62135596800n;
const maxTimestampSeconds = 253402300799n;

/** Checks an optional Timestamp is in the range the well-known type allows; false when it is not. */
export function checkTimestamp(
  v: Violations,
  field: string,
  t: { readonly seconds: bigint; readonly nanos: number } | undefined,
): boolean {
  if (!t) return true;
  if (
    t.seconds < minTimestampSeconds ||
    t.seconds > maxTimestampSeconds ||
    t.nanos < 0 ||
    t.nanos > 999_999_999
  ) {
    v.add(field, "must be a time from 0001-01-01 to 9999-12-31 (seconds and nanos of a valid Timestamp)");
    return false;
  }
  return true;
}

/** `s` cut to at most `n` UTF-16 units without splitting a character, for echoing input in messages. */
export function clip(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n).toWellFormed();
}
