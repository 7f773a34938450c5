/**
 * HTTP/1.1 answers of the fast path, written together at the end of the event-loop turn.
 *
 * Each HTTP/1.1 answer is its own write on its own socket. Written as each call finishes, a loaded
 * server writes once per call with its work in between, so a client process that waits for its
 * answers (a load balancer or proxy on the same host, a local client) is woken once per answer;
 * on loopback the writer pays that wake-up, and under load it cost about as much CPU as the call.
 * Written together after the turn's callbacks, the answers reach a waiting process in one burst:
 * the first write wakes it and the rest find it awake. (HTTP/2 needs none of this: Node already
 * sends a session's frames once per turn.) An answer waits at most for the rest of its turn.
 */
import type * as http from "node:http";
import type { WireAnswer } from "./wire.js";

const responses: http.ServerResponse[] = [];
const answers: WireAnswer[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  // Writes cannot add answers to this batch: one written by a callback now goes in the next.
  const n = responses.length;
  for (let i = 0; i < n; i++) {
    const res = responses[i] as http.ServerResponse;
    const a = answers[i] as WireAnswer;
    if (res.destroyed || res.headersSent) continue;
    res.writeHead(a.status, a.headers);
    res.end(a.body);
  }
  responses.splice(0, n);
  answers.splice(0, n);
}

/**
 * Writes `a` on `res` once this event-loop turn's callbacks are done (setImmediate), with every
 * other answer of the turn. Skipped when the response is gone or already answered by then.
 */
export function writeHttp1Answer(res: http.ServerResponse, a: WireAnswer): void {
  responses.push(res);
  answers.push(a);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
