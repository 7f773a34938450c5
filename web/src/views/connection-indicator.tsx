/** Shows whether the live stream is up: live, connecting, or reconnecting (with why). */
import { useLiveState } from "../hooks.js";

/** The indicator in the header. */
export function ConnectionIndicator() {
  const { state, detail } = useLiveState();
  const label = state === "live" ? "Live" : state === "connecting" ? "Connecting…" : "Reconnecting…";
  return (
    <span
      className={`conn conn-${state}`}
      role="status"
      aria-live="polite"
      title={detail || label}
      data-state={state}
    >
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}
