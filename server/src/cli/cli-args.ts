/**
 * Flag parsing shared by the client subcommands: --endpoint, --token, --json and the TLS options
 * (client-tls.ts), each with its SPAGE_* variable, plus the subcommand's own flags. A bad flag is a
 * UsageError with a clear message.
 */
import { parseArgs } from "node:util";
import { TaskPriority } from "../../../gen/spage/core/common_pb.js";
import { type ClientTls, clientTlsFlags, clientTlsOf } from "./client-tls.js";

/** Priorities by their flag names. */
export const priorities: Readonly<Record<string, TaskPriority>> = {
  low: TaskPriority.LOW,
  normal: TaskPriority.NORMAL,
  high: TaskPriority.HIGH,
  critical: TaskPriority.CRITICAL,
};

/** A mistake on the command line; printed with the usage hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Flags every client subcommand takes. */
export interface CommonFlags {
  readonly endpoint: string;
  readonly token: string;
  readonly json: boolean;
  /** CA and client certificate for an https:// endpoint; undefined when none is given. */
  readonly tls: ClientTls | undefined;
}

type FlagSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

/** Parses `argv` with the common flags and `spec`; returns flags, positionals and the common ones. */
export function parseCommand(
  argv: readonly string[],
  spec: FlagSpec,
  env: NodeJS.ProcessEnv = process.env,
): {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  common: CommonFlags;
} {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        endpoint: { type: "string" },
        token: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        ...clientTlsFlags,
        ...spec,
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const endpoint = (v.endpoint as string | undefined) ?? env.SPAGE_ENDPOINT ?? "http://127.0.0.1:9091";
  try {
    const u = new URL(endpoint);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
  } catch {
    throw new UsageError(`invalid --endpoint "${endpoint}": expected a URL such as http://127.0.0.1:9091`);
  }
  return {
    values: v,
    positionals: parsed.positionals,
    common: {
      endpoint,
      token: (v.token as string | undefined) ?? env.SPAGE_TOKEN ?? "",
      json: v.json === true,
      tls: clientTlsOf(v, env, endpoint),
    },
  };
}

/** Parses repeated `k=v` flags into a map. */
export function keyValues(flag: string, items: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items ?? []) {
    const i = item.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --${flag} "${item}": expected key=value`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** Parses a whole number flag. */
export function intFlag(flag: string, value: unknown, min: number, max: number, def: number): number {
  if (value === undefined) return def;
  const n = typeof value === "string" && /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `invalid --${flag} "${String(value)}": expected a whole number from ${min} to ${max}`,
    );
  }
  return n;
}
