/**
 * The daemon side of SpageAPI.StreamEvents: reads the daemon's events and answers each one, with an
 * `ack` for a well-formed event and an `error` event (never a dropped stream) for an unknown type or
 * missing data.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type Event, EventSchema } from "../../../gen/spage/core/common_pb.js";
import { abortable } from "../events/abortable.js";
import type { GatewayMetrics } from "./gateway-metrics.js";

/** Event types a daemon may send, with the data keys each requires. */
export const daemonEventTypes: Readonly<Record<string, readonly string[]>> = {
  "daemon.hello": ["daemon_id"],
  "daemon.heartbeat": [],
};

/** Answers a daemon's events until it closes the stream or the call is aborted. */
export async function* handleDaemonStream(
  events: AsyncIterable<Event>,
  signal: AbortSignal,
  metrics: GatewayMetrics,
): AsyncGenerator<Event> {
  const closeGauge = metrics.streamOpened("daemon_streams");
  try {
    for await (const ev of abortable(events, signal)) {
      yield reply(ev);
    }
  } finally {
    closeGauge();
  }
}

function reply(ev: Event): Event {
  const required = daemonEventTypes[ev.type];
  if (!required) {
    return errorEvent(
      ev,
      "invalid_argument",
      `unknown event type "${ev.type}"; expected one of ${Object.keys(daemonEventTypes).join(", ")}`,
    );
  }
  const missing = required.filter((k) => !ev.data[k]);
  if (missing.length > 0) {
    return errorEvent(ev, "invalid_argument", `${ev.type} needs data key(s): ${missing.join(", ")}`);
  }
  return create(EventSchema, {
    id: `ack-${ev.id}`,
    type: "ack",
    data: { ref: ev.id, of: ev.type },
    timestamp: timestampNow(),
  });
}

function errorEvent(ev: Event, code: string, message: string): Event {
  return create(EventSchema, {
    id: `error-${ev.id}`,
    type: "error",
    data: { code, message, ref: ev.id },
    timestamp: timestampNow(),
  });
}
