/** Connected daemons: hostname, capacity, labels, running tasks and last heartbeat; live. */
import { useCallback, useEffect, useRef, useState } from "react";
import type { Daemon } from "../../../gen/spage/core/common_pb.js";
import { api, describeError } from "../api.js";
import { dateOf, span } from "../format.js";
import { useLiveEvents, useTick } from "../hooks.js";

/** The daemons view. */
export function DaemonsView() {
  const [daemons, setDaemons] = useState<Daemon[]>([]);
  const [error, setError] = useState("");
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const tick = useTick(5000);
  const load = useCallback(async () => {
    try {
      setDaemons((await api.listDaemons({ includeDisconnected: true })).daemons);
      setError("");
    } catch (err) {
      setError(describeError(err).message);
    }
  }, []);
  // Heartbeats are not events: last-seen times are re-read every few seconds.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reloads on each tick.
  useEffect(() => {
    void load();
  }, [load, tick]);
  useLiveEvents(
    (events) => {
      if (
        !events.some(
          (e) => e.type.startsWith("daemon.") || e.type === "task.assigned" || e.type === "task.status",
        )
      )
        return;
      timer.current ??= setTimeout(() => {
        timer.current = undefined;
        void load();
      }, 300);
    },
    [load],
  );
  useEffect(() => () => clearTimeout(timer.current), []);
  return (
    <section aria-labelledby="daemons-title">
      <h1 id="daemons-title">Daemons</h1>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {daemons.length === 0 ? (
        <p className="muted">No daemon has connected in the last 24 hours.</p>
      ) : (
        <div className="table-wrap">
          <table className="daemons">
            <thead>
              <tr>
                <th scope="col">Daemon</th>
                <th scope="col">Host</th>
                <th scope="col">State</th>
                <th scope="col">Capacity</th>
                <th scope="col">Running</th>
                <th scope="col">Labels</th>
                <th scope="col">Last heartbeat</th>
              </tr>
            </thead>
            <tbody>
              {daemons.map((d) => {
                const seen = dateOf(d.lastSeen);
                return (
                  <tr key={d.id} data-daemon-id={d.id}>
                    <td>{d.id}</td>
                    <td>{d.hostname}</td>
                    <td>{d.connected ? "connected" : "gone"}</td>
                    <td>{d.capacity}</td>
                    <td>
                      {d.taskIds.length === 0
                        ? "-"
                        : d.taskIds.map((id) => (
                            <a key={id} href={`#/tasks/${encodeURIComponent(id)}`} className="chip">
                              {id.slice(0, 8)}
                            </a>
                          ))}
                    </td>
                    <td>
                      {Object.entries(d.labels).map(([k, v]) => (
                        <span key={k} className="chip">
                          {k}={v}
                        </span>
                      ))}
                    </td>
                    <td>{seen ? `${span(Date.now() - seen.getTime())} ago` : "-"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
