/** The caller of a task operation, from a call's context: its principal and client address. */
import type { ContextValues } from "@connectrpc/connect";
import { kPeerAddress, kPrincipal } from "../context-keys.js";
import { type Actor, anonymousOwner } from "../domain/task-owner.js";

/** The actor of the call whose context values these are. */
export function actorOf(values: ContextValues): Actor {
  const principal = values.get(kPrincipal);
  if (principal?.name === "anonymous") {
    return { owner: anonymousOwner(values.get(kPeerAddress)), anonymous: true };
  }
  return { owner: principal?.name ?? "", anonymous: false };
}
