/**
 * Live counts (pending, running, failed among tasks submitted in the last hour) and a small chart
 * of finished tasks per 10 s and the median queue wait, over the last 10 minutes. Counts are
 * re-read from GetMetrics when events arrive (at most once a second) and every 10 s.
 */
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../api.js";
import { useLiveEvents } from "../hooks.js";

const bucketMs = 10_000;
const buckets = 60;
const endedNames = new Set(["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"]);
const bucketOf = (t: number) => Math.floor(t / bucketMs) * bucketMs;

interface Sample {
  readonly at: number;
  finished: number;
  queueP50: number;
}

/** The stats strip under the header. */
export function HeaderStats() {
  const [counts, setCounts] = useState({ pending: 0, running: 0, failed: 0 });
  const [samples, setSamples] = useState<Sample[]>([]);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  /** Applies `patch` to the bucket of `at` (default: now), made if missing; drops buckets past the window. */
  const record = useCallback((patch: (s: Sample) => void, at = bucketOf(Date.now())) => {
    setSamples((ss) => {
      const now = bucketOf(Date.now());
      const copy = ss.filter((s) => s.at > now - buckets * bucketMs).map((s) => ({ ...s }));
      let cur = copy.find((s) => s.at === at);
      if (!cur) {
        const before = copy.filter((s) => s.at < at).pop();
        cur = { at, finished: 0, queueP50: before?.queueP50 ?? 0 };
        copy.push(cur);
        copy.sort((a, b) => a.at - b.at);
      }
      patch(cur);
      return copy;
    });
  }, []);

  const load = useCallback(async () => {
    try {
      const [m, failed] = await Promise.all([
        api.getMetrics({}),
        api.listTasks({ status: "FAILED", limit: 1, createdAfter: timestampFromMs(Date.now() - 3600_000) }),
      ]);
      setCounts({
        pending: m.gauges.tasks_queued ?? 0,
        running: m.gauges.tasks_running ?? 0,
        failed: failed.total,
      });
      const p50 = m.histograms.task_queue_seconds_p50 ?? 0;
      record((s) => {
        s.queueP50 = p50;
      });
    } catch {
      // The connection indicator says what is wrong; the last counts stay.
    }
  }, [record]);

  useEffect(() => {
    void load();
    const t = setInterval(load, bucketMs);
    return () => clearInterval(t);
  }, [load]);
  useLiveEvents(
    (events) => {
      // Each finished task counts in the bucket of its event's time; a replay after a reconnect
      // brings older events, which must not show as finished now (or at all, past the window).
      const since = Date.now() - buckets * bucketMs;
      for (const e of events) {
        if (e.type !== "task.status" || !endedNames.has(e.data.to ?? "")) continue;
        const t = e.timestamp ? timestampMs(e.timestamp) : Date.now();
        if (t < since) continue;
        const at = bucketOf(t);
        record((s) => {
          if (s.at === at) s.finished += 1;
        }, at);
      }
      timer.current ??= setTimeout(() => {
        timer.current = undefined;
        void load();
      }, 1000);
    },
    [load, record],
  );
  useEffect(() => () => clearTimeout(timer.current), []);

  return (
    <section className="stats" aria-label="Fleet now">
      <div className="count" data-testid="count-pending">
        <span className="n">{counts.pending.toLocaleString()}</span> pending
      </div>
      <div className="count" data-testid="count-running">
        <span className="n">{counts.running.toLocaleString()}</span> running
      </div>
      <div
        className="count"
        data-testid="count-failed"
        title="failed, among tasks submitted in the last hour"
      >
        <span className="n">{counts.failed.toLocaleString()}</span> failed (1 h)
      </div>
      <Chart samples={samples} />
    </section>
  );
}

function Chart({ samples }: { samples: readonly Sample[] }) {
  const w = 240;
  const h = 40;
  const now = Math.floor(Date.now() / bucketMs) * bucketMs;
  const maxFinished = Math.max(1, ...samples.map((s) => s.finished));
  const maxWait = Math.max(0.001, ...samples.map((s) => s.queueP50));
  const x = (at: number) => w - ((now - at) / bucketMs + 1) * (w / buckets);
  const line = samples
    .map((s) => `${x(s.at) + w / buckets / 2},${h - (s.queueP50 / maxWait) * (h - 2)}`)
    .join(" ");
  const last = samples[samples.length - 1];
  return (
    <figure className="chart">
      <svg
        width={w}
        height={h}
        viewBox={`0 0 ${w} ${h}`}
        role="img"
        aria-label="Finished tasks per 10 s and median queue wait, last 10 minutes"
      >
        {samples.map((s) => {
          const bh = (s.finished / maxFinished) * (h - 2);
          return (
            <rect key={s.at} x={x(s.at)} y={h - bh} width={w / buckets - 1} height={bh} className="bar" />
          );
        })}
        {samples.length > 1 && <polyline points={line} className="wait" fill="none" />}
      </svg>
      <figcaption>
        finished / 10 s (bars), queue wait p50 {last ? `${last.queueP50.toFixed(2)} s` : "-"} (line)
      </figcaption>
    </figure>
  );
}
