/**
 * Strict enum values in JSON requests. Connect reads JSON with unknown fields ignored (so a client
 * built from a newer contract keeps working), and protobuf-es then also drops an enum value it does
 * not know: `{"priority":"NOPE"}` would become an unset priority, stored as NORMAL. This check runs
 * before the message is parsed and refuses such a value with invalid_argument and a field violation
 * naming the field (`priority`, `tasks[2].status`), on the fast path and in Connect's handler alike:
 * both read JSON through the options `jsonOptionsFor` gives each method.
 */
import type { DescEnum, DescField, DescMessage, JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "../domain/errors.js";
import { toConnectError } from "../interceptors/error-mapping.js";

/** JSON options as Connect's serialization reads them, with the text decoder it calls first. */
export type JsonSerializationOptions = Partial<JsonReadOptions & JsonWriteOptions> & {
  textDecoder?: { decode(input?: Uint8Array): string };
};

/** A check of one message type's JSON: throws for an enum value its schema does not know. */
type Check = (json: unknown, path: string) => void;

const checks = new WeakMap<DescMessage, Check | null>();

/**
 * The JSON options for reading `schema` requests: `base`, plus, when the message can hold an enum
 * anywhere, a text decoder that checks every enum value of the request before it is parsed.
 */
export function jsonOptionsFor(
  schema: DescMessage,
  base: JsonSerializationOptions = {},
): JsonSerializationOptions {
  const check = checkOf(schema);
  if (!check) return base;
  const utf8 = new TextDecoder();
  return {
    ...base,
    textDecoder: {
      decode(input) {
        const text = utf8.decode(input);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          return text; // not JSON: the parser that follows says why
        }
        check(json, "");
        return text;
      },
    },
  };
}

/** The check of `schema`, or null when no enum can occur in it. */
function checkOf(schema: DescMessage, visiting = new Set<DescMessage>()): Check | null {
  const known = checks.get(schema);
  if (known !== undefined) return known;
  // Recursive types: an enum reachable through the cycle is found from the cycle's first message.
  if (visiting.has(schema)) return null;
  visiting.add(schema);
  const fields: [DescField, Check][] = [];
  for (const field of schema.fields) {
    const check = fieldCheck(field, visiting);
    if (check) fields.push([field, check]);
  }
  visiting.delete(schema);
  const check: Check | null =
    fields.length === 0
      ? null
      : (json, path) => {
          if (json === null || typeof json !== "object" || Array.isArray(json)) return;
          const obj = json as Record<string, unknown>;
          for (const [field, check] of fields) {
            const value = obj[field.jsonName] ?? obj[field.name];
            if (value !== undefined && value !== null)
              check(value, path ? `${path}.${field.name}` : field.name);
          }
        };
  checks.set(schema, check);
  return check;
}

/** The check of one field's JSON value, or null when it can hold no enum. */
function fieldCheck(field: DescField, visiting: Set<DescMessage>): Check | null {
  switch (field.fieldKind) {
    case "enum":
      return enumCheck(field.enum);
    case "message": {
      const inner = messageCheck(field.message, visiting);
      return inner;
    }
    case "list": {
      const item =
        field.listKind === "enum"
          ? enumCheck(field.enum)
          : field.listKind === "message"
            ? messageCheck(field.message, visiting)
            : null;
      if (!item) return null;
      return (json, path) => {
        if (!Array.isArray(json)) return;
        json.forEach((v, i) => {
          if (v !== null) item(v, `${path}[${i}]`);
        });
      };
    }
    case "map": {
      const value =
        field.mapKind === "enum"
          ? enumCheck(field.enum)
          : field.mapKind === "message"
            ? messageCheck(field.message, visiting)
            : null;
      if (!value) return null;
      return (json, path) => {
        if (json === null || typeof json !== "object") return;
        for (const [k, v] of Object.entries(json)) if (v !== null) value(v, `${path}[${JSON.stringify(k)}]`);
      };
    }
    default:
      return null;
  }
}

/** Well-known types have JSON forms of their own (a Timestamp is a string) and hold no enums. */
function messageCheck(message: DescMessage, visiting: Set<DescMessage>): Check | null {
  if (message.typeName.startsWith("google.protobuf.")) return null;
  return checkOf(message, visiting);
}

function enumCheck(desc: DescEnum): Check {
  const names = new Set(desc.values.map((v) => v.name));
  return (json, path) => {
    // Numbers are left to the parser and the field's own validation; a string must be a name.
    if (typeof json !== "string" || names.has(json)) return;
    const expected = desc.values
      .map((v) => v.name)
      .filter((n) => !n.endsWith("_UNSPECIFIED"))
      .join(", ");
    throw toConnectError(
      InvalidArgumentError.field(
        path,
        `unknown value ${JSON.stringify(json)} of ${desc.typeName}; expected one of ${expected}`,
      ),
    );
  };
}
