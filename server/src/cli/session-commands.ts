/**
 * `sessions revoke`: signs a single sign-on person out everywhere, on the store (--data-dir,
 * --database-url) or through the gateway (--token with scope admin).
 */
import { openAccessBackend, storeFlagOptions, storeFlagsOf } from "./access-backend.js";
import { parseCommand, UsageError } from "./cli-args.js";
import { sessionsUsage } from "./usage.js";

type Out = (text: string) => void;

/** `sessions`: runs one sessions subcommand. */
export async function sessionsCommand(argv: readonly string[], out: Out): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    out(sessionsUsage);
    return sub === undefined ? 2 : 0;
  }
  const { values: v, common } = parseCommand(rest, {
    ...storeFlagOptions,
    subject: { type: "string" },
    issuer: { type: "string" },
  });
  if (v.help) {
    out(sessionsUsage);
    return 0;
  }
  if (sub !== "revoke") throw new UsageError(`unknown sessions subcommand "${sub}": use revoke`);
  const subject = typeof v.subject === "string" ? v.subject : "";
  if (subject === "") {
    throw new UsageError("sessions revoke needs --subject SUB (the person's sub claim, as in the audit log)");
  }
  const issuer = typeof v.issuer === "string" ? v.issuer : "";
  const backend = await openAccessBackend(storeFlagsOf(v), common, "sessions revoke");
  try {
    const n = await backend.revokePersonSessions(issuer, subject);
    const who = issuer === "" ? subject : `${issuer}#${subject}`;
    out(
      common.json ? JSON.stringify({ revoked: n }) : `Revoked ${n} session${n === 1 ? "" : "s"} of ${who}.`,
    );
  } finally {
    await backend.close();
  }
  return 0;
}
