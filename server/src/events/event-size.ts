/**
 * A cheap estimate of an event's encoded size, for pacing streams by bytes without encoding twice
 * (Connect encodes each message itself).
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";

/** Tags, lengths, the sequence and the timestamp: what an event costs beyond its strings. */
const fixedOverheadBytes = 32;

/** About the number of bytes `ev` takes in the protobuf binary encoding (a little more in JSON). */
export function approxEventBytes(ev: Event): number {
  let n = fixedOverheadBytes + ev.id.length + ev.type.length + ev.taskId.length;
  for (const key in ev.data) n += key.length + (ev.data[key]?.length ?? 0) + 6;
  return n;
}
