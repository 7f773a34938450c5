/** The metadata label filter of ListTasks and CancelTasks: "key=value". */
import { taskLimits, type Violations } from "../domain/task-validation.js";

/** Label filters: "key=value", the key as metadata keys are written. */
const labelKey = /^[A-Za-z0-9._/-]{1,128}$/;

/** Parses a "key=value" label filter; undefined for "", a violation for a malformed one. */
export function parseLabelFilter(
  v: Violations,
  field: string,
  text: string,
): { key: string; value: string } | undefined {
  if (text === "") return undefined;
  const i = text.indexOf("=");
  const key = i < 0 ? text : text.slice(0, i);
  if (i < 0 || !labelKey.test(key)) {
    v.add(field, 'must be "key=value" (key: letters, digits and . _ / -, at most 128)');
    return undefined;
  }
  const value = text.slice(i + 1);
  if (Buffer.byteLength(value) > taskLimits.valueMaxBytes) v.add(field, "value is too long");
  return { key, value };
}
