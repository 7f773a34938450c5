/**
 * `keys create|list|revoke`: API key administration, on the store (--data-dir) or through the
 * gateway (--token with scope admin). A new key is printed once; --quiet prints only the key.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type ApiKey, ApiKeySchema, CreateApiKeyResponseSchema } from "../../../gen/spage/api/access_pb.js";
import { allScopes } from "../auth/scopes.js";
import { openAccessBackend, storeFlagOptions, storeFlagsOf } from "./access-backend.js";
import { parseCommand, UsageError } from "./cli-args.js";
import { json } from "./format.js";
import { keysUsage } from "./usage.js";

type Out = (text: string) => void;

const when = (k: ApiKey, field: "createdAt" | "revokedAt") => {
  const t = k[field];
  return t
    ? timestampDate(t)
        .toISOString()
        .replace(/\.\d+Z$/, "Z")
    : "-";
};

function keyTable(keys: readonly ApiKey[]): string {
  if (keys.length === 0) return "no API keys";
  const rows = keys.map((k) => [
    k.id,
    k.name,
    k.scopes.join(","),
    when(k, "createdAt"),
    when(k, "revokedAt"),
  ]);
  const head = ["ID", "NAME", "SCOPES", "CREATED", "REVOKED"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `keys`: runs one key subcommand. */
export async function keysCommand(argv: readonly string[], out: Out): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    out(keysUsage);
    return sub === undefined ? 2 : 0;
  }
  const {
    values: v,
    positionals,
    common,
  } = parseCommand(rest, {
    ...storeFlagOptions,
    name: { type: "string" },
    scopes: { type: "string" },
    quiet: { type: "boolean", short: "q" },
    all: { type: "boolean" },
  });
  if (v.help) {
    out(keysUsage);
    return 0;
  }
  const at = storeFlagsOf(v);
  switch (sub) {
    case "create": {
      if (!v.name) throw new UsageError("keys create needs --name NAME");
      if (!v.scopes) throw new UsageError(`keys create needs --scopes (some of ${allScopes.join(", ")})`);
      const scopes = String(v.scopes)
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
      const backend = await openAccessBackend(at, common, "keys create");
      try {
        const { key, apiKey } = await backend.createKey(String(v.name), scopes);
        if (v.quiet) out(apiKey);
        else if (common.json)
          out(json(CreateApiKeyResponseSchema, create(CreateApiKeyResponseSchema, { key, apiKey })));
        else {
          out(`Created API key ${key.id} "${key.name}" with ${key.scopes.join(", ")}.`);
          out("It is shown only this once (the gateway keeps a salted hash):\n");
          out(`  ${apiKey}\n`);
        }
      } finally {
        await backend.close();
      }
      return 0;
    }
    case "list": {
      const backend = await openAccessBackend(at, common, "keys list");
      try {
        const keys = await backend.listKeys(v.all === true);
        out(common.json ? keys.map((k) => json(ApiKeySchema, k)).join("\n") : keyTable(keys));
      } finally {
        await backend.close();
      }
      return 0;
    }
    case "revoke": {
      const id = positionals[0];
      if (!id) throw new UsageError("keys revoke needs the key id (see keys list)");
      const backend = await openAccessBackend(at, common, "keys revoke");
      try {
        const key = await backend.revokeKey(id);
        out(
          common.json
            ? json(ApiKeySchema, key)
            : `Revoked API key ${key.id} "${key.name}" and its session tokens.`,
        );
      } finally {
        await backend.close();
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown keys subcommand "${sub}": use create, list or revoke`);
  }
}
