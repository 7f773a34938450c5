/**
 * Why a call was aborted, as the error to end it with. Connect aborts a call's signal with a
 * ConnectError for a deadline, an RST_STREAM the client sent, or the gateway's shutdown; but a client
 * that simply goes away (its connection closes) aborts it with a plain DOMException "AbortError",
 * which, thrown as is, would be logged and counted as an Internal server fault.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError } from "../domain/errors.js";

/** The signal's reason when it is a ConnectError or a domain error, otherwise Canceled. */
export function abortReason(signal: AbortSignal): Error {
  return abortError(signal.reason);
}

/** An abort's reason when it is a ConnectError or a domain error, otherwise Canceled. */
export function abortError(reason: unknown): Error {
  if (reason instanceof ConnectError || reason instanceof DomainError) return reason;
  return new ConnectError("the client went away", Code.Canceled, undefined, undefined, reason);
}

/** Throws `abortReason(signal)` if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortReason(signal);
}
