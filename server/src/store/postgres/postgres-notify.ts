/**
 * Wake-ups of the gateways sharing a schema: each event-writing transaction notifies the channel
 * `spage_events_<schema>` (postgres-events.ts), and each gateway listens on it with one connection
 * of its own, outside the pool. A notification carries nothing: it only tells the listener to read
 * the event table, which is the truth. A dropped listening connection is opened again with backoff;
 * what was committed meanwhile is read by the event bus's poll.
 */
import pg from "pg";

/** Reconnect delays after the listening connection failed, growing to the last. */
const retryMs = [200, 1000, 5000];

/** Starts listening; returns the function that stops. */
export function listenForCommits(
  url: string,
  schema: string,
  onCommit: () => void,
  onError: (err: Error) => void,
): () => void {
  const channel = pg.escapeIdentifier(`spage_events_${schema}`);
  let stopped = false;
  let client: pg.Client | undefined;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;

  const connect = async () => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: url, application_name: "spage-gateway listen" });
    client = c;
    c.on("notification", () => onCommit());
    c.on("error", (err) => retry(c, err));
    c.on("end", () => retry(c));
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
      failures = 0;
      // Events committed while nobody listened are read now.
      onCommit();
    } catch (err) {
      retry(c, err as Error);
    }
  };

  const retry = (c: pg.Client, err?: Error) => {
    if (stopped || client !== c) return;
    client = undefined;
    if (err) onError(err);
    c.end().catch(() => {});
    const delay = retryMs[Math.min(failures, retryMs.length - 1)] ?? 5000;
    failures++;
    timer = setTimeout(() => void connect(), delay);
    timer.unref();
  };

  void connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    const c = client;
    client = undefined;
    c?.end().catch(() => {});
  };
}
