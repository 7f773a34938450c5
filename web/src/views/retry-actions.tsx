/**
 * Retry of a task that has ended: "Retry" runs it again whole, as a new task linked to it;
 * "Retry failed hosts only" (offered when its last run had hosts with failed steps) runs it again
 * on those hosts only. Either opens the new task. A run a Spage core made on its own cannot be
 * started again by the gateway, so it has neither.
 */
import { useState } from "react";
import type { Task } from "../../../gen/spage/core/common_pb.js";
import { api, describeError } from "../api.js";
import { endedStates } from "../format.js";

/** The retry buttons of `task`; nothing while it has not ended. */
export function RetryActions({ task }: { task: Task }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  if (!endedStates.has(task.status) || task.origin === "core") return null;
  const failedHosts = task.hosts.filter((h) => h.failed > 0).map((h) => h.host);
  const retry = async (failedHostsOnly: boolean) => {
    setBusy(true);
    setError("");
    try {
      const r = await api.retryTask({ taskId: task.id, failedHostsOnly });
      if (r.task) window.location.hash = `#/tasks/${encodeURIComponent(r.task.id)}`;
    } catch (err) {
      setError(describeError(err).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="actions retry">
      <button type="button" disabled={busy} onClick={() => retry(false)}>
        Retry
      </button>
      {failedHosts.length > 0 && (
        <>
          <button type="button" disabled={busy} onClick={() => retry(true)} aria-describedby="failed-hosts">
            Retry failed hosts only
          </button>
          <span id="failed-hosts" className="muted">
            Failed {failedHosts.length === 1 ? "host" : "hosts"}: {failedHosts.join(", ")}
          </span>
        </>
      )}
      {busy && (
        <span role="status" className="muted">
          Starting the retry…
        </span>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </div>
  );
}
