/**
 * `audit list|verify`: reads the audit log (on the store with --data-dir, or through the gateway
 * with an admin --token) and checks its hash chain, naming the first broken link.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type AuditEvent, AuditEventSchema } from "../../../gen/spage/api/access_pb.js";
import { verifyChain } from "../domain/audit-chain.js";
import { openAccessBackend, storeFlagOptions, storeFlagsOf } from "./access-backend.js";
import { intFlag, parseCommand, UsageError } from "./cli-args.js";
import { json } from "./format.js";
import { auditUsage } from "./usage.js";

type Out = (text: string) => void;

function line(e: AuditEvent): string {
  const t = e.time ? timestampDate(e.time).toISOString() : "-";
  const parts = [
    `#${e.sequence}`,
    t,
    e.principal,
    e.method,
    e.code,
    e.taskId ? `task=${e.taskId}` : "",
    e.clientAddress ? `from=${e.clientAddress}` : "",
    e.detail ? `(${e.detail})` : "",
  ];
  return parts.filter((p) => p !== "").join("  ");
}

/** `audit`: runs one audit subcommand. */
export async function auditCommand(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    out(auditUsage);
    return sub === undefined ? 2 : 0;
  }
  const { values: v, common } = parseCommand(rest, {
    ...storeFlagOptions,
    after: { type: "string" },
    limit: { type: "string" },
    principal: { type: "string" },
    task: { type: "string" },
  });
  const at = storeFlagsOf(v);
  if (sub !== "list" && sub !== "verify") {
    throw new UsageError(`unknown audit subcommand "${sub}": use list or verify`);
  }
  const backend = await openAccessBackend(at, common, `audit ${sub}`);
  try {
    if (sub === "list") {
      const after = BigInt(intFlag("after", v.after, 0, Number.MAX_SAFE_INTEGER, 0));
      const limit = intFlag("limit", v.limit, 1, 1000, 100);
      const page = await backend.auditPage(after, limit, String(v.principal ?? ""), String(v.task ?? ""));
      if (common.json) for (const e of page.events) out(json(AuditEventSchema, e));
      else out(page.events.length === 0 ? "no audit records" : page.events.map(line).join("\n"));
      return 0;
    }
    const result = await verifyChain(async (after) => {
      const page = await backend.auditPage(after, 1000, "", "");
      const records = page.events.map((e) => ({ ...e, time: e.time ? timestampDate(e.time) : new Date(0) }));
      return { records, next: page.next };
    });
    if (result.broken) {
      err(`audit log BROKEN at record ${result.broken.sequence}: ${result.broken.reason}`);
      err(`${result.checked} records before it check out.`);
      return 1;
    }
    out(
      result.checked > 0
        ? `audit log intact: ${result.checked} records, last #${result.lastSequence} with hash ${result.lastHash}`
        : "audit log intact: it is empty",
    );
    return 0;
  } finally {
    await backend.close();
  }
}
