/**
 * Appends an audit record for every mutating call and every authentication event (success or
 * failure): time, principal, key id, client address, method, target task, outcome code and request
 * id. A unary call answers only once its record is on disk (committed with the call's change when
 * the service passes it on, see AuditInWrite); a stream is recorded when it ends.
 * Place it outside error mapping, so it records the code the client sees.
 */
import {
  ConnectError,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { lockoutMessagePrefix } from "../auth/auth-failures.js";
import { auditDetailOf } from "../auth/principal.js";
import {
  kAuditDetail,
  kAuditInWrite,
  kClaimedKeyId,
  kLog,
  kPeerAddress,
  kPrincipal,
  kRequestId,
} from "../context-keys.js";
import { clip } from "../domain/task-validation.js";
import { type AuditDraft, AuditInWrite, type AuditLog } from "../services/audit-log.js";
import { rpcNameOf } from "./rpc-name.js";
import { hookStream, type StreamHook } from "./stream-errors.js";

/** Methods recorded whatever their outcome. */
export const auditedMethods: ReadonlySet<string> = new Set([
  "spage.api.SpageAPI/SubmitTask",
  "spage.api.SpageAPI/CancelTask",
  "spage.api.SpageAPI/SubmitTasks",
  "spage.api.SpageAPI/CancelTasks",
  "spage.api.SpageAPI/RetryTask",
  "spage.api.SpageAPI/StreamEvents",
  "spage.api.SpageAPI/Authenticate",
  "spage.api.SpageAPI/ReportTaskResult",
  "spage.api.SpageAPI/CreateApiKey",
  "spage.api.SpageAPI/RevokeApiKey",
  "spage.api.SpageAPI/RevokeToken",
  "spage.api.SpageAPI/RevokePersonSessions",
  "spage.core.SpageExecution/ExecuteTask",
  "spage.core.SpageExecution/CancelTask",
  "spage.core.SpageExecution/RegisterTask",
  "spage.core.SpageExecution/StreamProgress",
  "spage.core.SpageExecution/ExecutePlay",
  "spage.core.SpageExecution/CancelPlay",
  "spage.core.SpageExecution/RegisterPlay",
  "spage.core.SpageExecution/RegisterPlayCompletion",
  "spage.core.SpageExecution/StreamTaskProgress",
  "spage.core.SpageExecution/StreamPlayProgress",
]);

/** Outcomes recorded for every method: refused credentials, scopes and brute force. */
const authOutcomes = new Set(["unauthenticated", "permission_denied"]);

/** The task a message names: its task_id, or a play's play_id (the same id space). */
const taskIdOf = (msg: unknown): string => {
  const m = msg as { taskId?: unknown; playId?: unknown } | undefined;
  const id = typeof m?.taskId === "string" && m.taskId !== "" ? m.taskId : m?.playId;
  return typeof id === "string" ? id : "";
};

/** Creates the audit interceptor. */
export function createAuditInterceptor(audit: AuditLog): Interceptor {
  return (next) => async (req) => {
    const call = new AuditedCall(audit, req);
    const values = call.values;
    // A unary call's success record may be committed by the store write that completes the call.
    const inWrite =
      call.always && !req.stream
        ? new AuditInWrite((taskId) => call.fields("ok", taskId, values.get(kAuditDetail)))
        : undefined;
    if (inWrite) values.set(kAuditInWrite, inWrite);
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      await call.write(err, false, "", "");
      throw err;
    }
    if (!res.stream) {
      // A success is recorded only for the methods recorded whatever their outcome.
      if (call.always && !inWrite?.written) {
        await call.write(undefined, false, taskIdOf(res.message), values.get(kAuditDetail));
      }
      return res;
    }
    return hookStream(res, call);
  };
}

/**
 * One call's audit record. A stream's hook lives as long as the stream, so it keeps only the call's
 * values, not its request.
 */
class AuditedCall implements StreamHook {
  readonly method: string;
  /** Whether the method is recorded whatever its outcome. */
  readonly always: boolean;
  readonly values: ContextValues;
  private readonly requestTask: string;

  constructor(
    private readonly audit: AuditLog,
    req: UnaryRequest | StreamRequest,
  ) {
    this.method = rpcNameOf(req.method);
    this.always = auditedMethods.has(this.method);
    this.requestTask = req.stream ? "" : taskIdOf(req.message);
    this.values = req.contextValues;
  }

  fields(code: string, taskId: string, detail: string): AuditDraft {
    const values = this.values;
    const principal = values.get(kPrincipal);
    return {
      principal: principal?.name ?? "unknown",
      keyId: principal?.keyId || values.get(kClaimedKeyId),
      clientAddress: values.get(kPeerAddress),
      method: this.method,
      taskId: this.requestTask || taskId,
      code,
      requestId: values.get(kRequestId),
      detail: auditDetailOf(principal, detail),
    };
  }

  async write(err: unknown, aborted: boolean, responseTask: string, detail: string): Promise<void> {
    const code = aborted ? "canceled" : err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
    const limitedAuth =
      code === "resource_exhausted" && ConnectError.from(err).rawMessage.startsWith(lockoutMessagePrefix);
    if (!this.always && !authOutcomes.has(code) && !limitedAuth) return;
    try {
      await this.audit.record(
        this.fields(
          code,
          responseTask,
          detail || (err === undefined ? "" : clip(ConnectError.from(err).rawMessage, 200)),
        ),
      );
    } catch (e) {
      this.values.get(kLog).error({ err: e, rpc: this.method }, "audit record not written");
    }
  }

  /** A stream's end. */
  onEnd(err: unknown, aborted: boolean): void {
    void this.write(err, aborted, "", this.values.get(kAuditDetail));
  }
}
