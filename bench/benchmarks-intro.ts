/**
 * The explanatory top of BENCHMARKS.md, written only when the file has no results marker yet (an
 * existing file keeps whatever stands above the marker). Keep it equal to the file's top.
 */
export const benchmarksIntro = `# Benchmarks

Run \`npm run bench\`. It starts the gateway as \`npm start\` runs it (\`dist/gateway.js\`, bundled from
\`server/src\` by \`server/build.ts\`, under plain \`node\`) with \`--log-level warn\` and a fresh temporary
\`--data-dir\` when the gateway has that flag, twice, with its unary fast path (the default)
and with \`--no-fast-path\`, beside reference servers and raw floors; it loads them, checks every
answer, prints the results and rewrites the results section below (everything above the marker is
kept). It takes about 10 minutes on a 2-core machine and exits 1 when a check fails (each failure is
printed as a \`FAIL:\` line and listed with the results). It needs \`h2load\`
(\`apt-get install -y nghttp2-client\`) and exits 2 saying so when it is missing; everything else comes
with \`npm install\`. \`SPAGE_BENCH_SECONDS\` changes the length of each measured unary run (default 5)
and the size of the fan-out batch; \`SPAGE_BENCH_GATEWAY_DIR\` benchmarks the gateway of another
checkout (with its own node_modules; without \`--fast-path\` it has no stock Connect rows);
\`SPAGE_BENCH_GATEWAY_NODE_FLAGS\` adds \`node\` flags to every gateway started (for example
\`--cpu-prof --cpu-prof-dir=/tmp/prof\` to profile it under the bench's load).

The gateway runs as in production, with authentication on: the bench exchanges the admin key it
prints on its first start for a session token, and every call carries it (checked against the
store on every call, then scopes and rate limits). The limits are set far above what the bench
offers, so they are checked but never refuse a call.

How it measures: servers run pinned to core 0, the load tools and the bench process to core 1 (with
\`taskset\`, when it exists). Native gRPC is loaded with h2load over h2c (prior knowledge); Connect JSON
and gRPC-Web with autocannon over HTTP/1.1. For each server, protocol and call there is a 2 s warm-up,
then per load level a calibration run (1 s; over HTTP/1.1, until 1 s after its connection ramp) that
sizes the measured run to about 5 s of steady load by request count, so every count can be checked
exactly. Each figure comes from one run: expect some noise between
runs, and much more when other processes use the machine (see "Other processes' CPU").

Rows of the unary table:

- **gateway**: the gateway as it ships, its unary fast path (\`server/src/fast-path/\`) serving the
  unary calls. **gateway, stock Connect**: a second gateway, started with \`--no-fast-path\`, so
  connect-fastify's own handler serves every call. Both run at once (each with its own store and
  task) and are loaded one after the other for each protocol and call, so drift on the machine
  touches both alike. Every other gateway table (write path, peers, streaming, memory, cost of
  authentication, dispatch, dashboard) is of the fast-path gateway.
- **grpc-js peer / connect-node peer**: a plain \`@grpc/grpc-js\` server and a bare connect-node server
  (\`connectNodeAdapter\` on \`http2.createServer\`, h2c) answering the same GetTaskStatus, with the
  gateway's exact answer bytes, from an in-memory map; loaded with the same h2load command.
- **plain grpc-js server reading the row** (\`bench/peers/grpc-js-store-peer.ts\`): a plain
  \`@grpc/grpc-js\` server doing GetTaskStatus its own plain way, with no code from \`server/src\`: the
  service loaded from \`proto/\` with \`@grpc/proto-loader\`, the task id checked, the row read from
  the fast-path gateway's database file (opened read-only with \`better-sqlite3\`, one prepared
  \`SELECT * FROM tasks WHERE id = ?\` with the log's last sequence), its JSON columns parsed, and the
  plain answer object handed to proto-loader's serializer (\`bench/peers/plain-task-read.ts\`). No
  authentication, interceptors, logging or metrics. **plain HTTP/1.1 server reading the row**
  (\`bench/peers/http1-store-peer.ts\`): the same read for Connect JSON and gRPC-Web on a raw
  \`node:http\` server: the whole body read and decoded, the answer built as a generated message and
  encoded, byte for byte the gateway's answer (checked before it is loaded). Both show how far a
  plain server doing only the call's own work gets against the floors (the "same work" table).
- **raw HTTP/2 floor** (\`bench/peers/raw-h2-floor.ts\`): a raw \`node:http2\` server (h2c) that answers
  every POST, without decoding the request, with the fixed gRPC answer: headers, one DATA frame with
  the gateway's enveloped GetTaskStatus answer, trailers \`grpc-status: 0\`. **raw HTTP/1.1 floor**
  (\`bench/peers/raw-http1-floor.ts\`): a raw \`node:http\` server answering every POST with the
  gateway's Connect JSON body for that answer (\`toJsonString\` of it), or for gRPC-Web
  (\`application/grpc-web*\`) the enveloped message and the trailer frame. Before loading, the bench
  checks both bodies are byte for byte what the gateway sends. The floors are what Node's HTTP/2 and
  HTTP/1.1 cost per call with nothing on top; loaded with the same commands as the gateway. A floor
  can saturate the load tool before the server (see load CPU), which understates the floor.

Columns:

- **calls/s**: completed calls per second at 256 calls in flight (h2load \`-c 4 -m 64\`, autocannon
  256 connections) and at 1 in flight (h2load \`-c 1 -m 1\`, 1 connection).
- **p50 / p99 ms**: latency percentiles over every call of the run, as the load tool timed it
  (HTTP/1.1: of the steady part, see the connection ramp).
- **connection ramp s**: autocannon opens its 256 connections at once and sends on each as soon as it
  is up, but Node accepts one connection per event-loop turn, and a turn of a saturated server lasts
  as long as the calls it serves: the last connections get their first answer seconds later. The
  column is the time until every connection had its first answer; the HTTP/1.1 calls/s and latencies
  are taken from the steady part after it (the checks still cover every call of the run). Clients
  that keep their connections, as gRPC-Web and Connect clients do, see the steady figures.
- **server / load CPU**: share of one core used by the server process and by the load tool during the
  run at 256 in flight (from /proc). Near 100 % means that side was the limit.
- **other CPU**: share of a core that other processes on the machine used during the row's two
  measured runs (the larger). Anything but a few % means the row's figures are disturbed.
- **GetTaskStatus** reads one task submitted before the runs (from SQLite, on the gateway);
  **SubmitTask** leaves \`task_id\` empty, so every call stores a new task (durably when the store is
  \`sqlite\`).

Sections:

- **Fast path against the floors**: GetTaskStatus figures of the same run, for the fast path and for
  stock Connect: native gRPC calls/s at 256 in flight ÷ the grpc-js peer's (target ≥ 1.0x) and ÷ the
  raw HTTP/2 floor's (target ≥ 0.6x); Connect JSON calls/s at 256 in flight ÷ the raw HTTP/1.1
  floor's (target ≥ 0.5x); gRPC-Web ÷ the raw HTTP/1.1 floor's gRPC-Web figure (target ≥ 0.6x); the
  native gRPC p99 at 1 in flight (target under 3 ms). Each target is a check on the fast-path figures
  only; the stock Connect column shows where the fast path started from.
- **Gateway gRPC against the reference peers**: **gateway ÷ peer** divides the fast-path gateway's
  figure by the peer's: for calls/s below 1x is slower, for latency above 1x is slower. The SubmitTask
  rows are divided by the peers' GetTaskStatus figures (the peers have no store): they show what the
  write path costs on top of a bare server.
- **Streaming**: 100 WatchEvents streams (request \`{}\`) over 4 HTTP/2 connections while another client
  submits tasks at a steady rate for 5 s, on a fresh gateway; each submit reaches every watcher as one
  \`task.submitted\` event. Latency runs from the submit's send to a watcher's receipt; "from event
  timestamp" is the part after the gateway stamped the event. Events/s counts all watchers.
- **First event on 100 streams opened at once**: on a fresh gateway, 100 WatchEvents streams are
  started in one go over 4 HTTP/2 connections (connect-node's gRPC client, \`after_sequence\` at the
  log's end so nothing is replayed); once the gateway counts all 100 subscribed (GetMetrics
  \`watchers_connected\`, polled every 10 ms: "all subscribed after"), one SubmitTask is sent, and each
  stream's first event is timed from that send (p50, p99, max over the 100). A first round, not
  reported, warms the gateway up; the measured round opens new streams on new connections. Target:
  every stream's first event within 100 ms of the send (a check).
- **Fan-out against a plain grpc-js server**: 100 WatchEvents streams over 4 HTTP/2 connections, then
  SubmitTask calls, 32 in flight (1,000 of them with the default \`SPAGE_BENCH_SECONDS\`, 200 per
  second of it), each reaching every stream as one event; messages/s is all messages delivered over
  the time from the first submit's send to the last message's receipt. The same client code runs
  against a fresh gateway and against \`bench/peers/grpc-js-fan-out-peer.ts\`, a grpc-js server whose
  SubmitTask writes the event the gateway sent for that task id to every open stream (serialized by
  grpc-js on each write, as Connect does), so both send the same number of events with the same
  message bytes. Each server first gets a probe (every stream live) and a warm-up batch a fifth the
  size. The gateway's figure includes storing each task durably; the peer only fans out. Target:
  the gateway delivers at least as many messages per second as the peer (a check).
- **Write path**: whether durable writes are the bottleneck, on one fresh gateway (authentication
  on): per protocol, SubmitTask (every call stores a new task, its event and its audit record,
  committed and fsynced before the answer) and GetTaskStatus at 256 in flight, loaded as told
  below. Target: SubmitTask calls/s at least 80 % of GetTaskStatus calls/s
  (a check, on the median of paired runs). Behind it: real-client samples of both calls before
  and after, no RPC ending in an error code, and at least one stored and counted task per
  SubmitTask the load tool counted. The unary table's own SubmitTask and GetTaskStatus rows over
  HTTP/1.1 include autocannon's connection ramp, which varies more between runs than the
  difference compared here.
- **Cost of authentication**: GetTaskStatus at 256 in flight on five fresh pairs of gateways per
  protocol, one with authentication on (session token) and one with \`--auth off\`. The two are
  loaded by two h2load processes in alternating slices of 250 ms (the running one is paused with
  SIGSTOP and the other resumed), 4 s of load each, after a 2 s warm-up of each: both run under the
  same drift of the machine's speed, which moves back-to-back runs of a few seconds by more than the
  difference measured. Each side is judged by its server CPU per call (CPU seconds from /proc ÷
  calls completed): a paused side only finishes its calls in flight. Which side takes the first
  slice alternates between pairs, and a fresh pair each time keeps one process that happens to be
  fast or slow for its whole life from deciding the check. Target: the token's calls per
  CPU-second at least 90 % of the open gateway's (a check, on the median of the pairs); real-client
  samples on both sides before and after.
- **Cost of tracing**: GetTaskStatus and SubmitTask at 256 in flight on fresh pairs of gateways
  (three per row), one with \`--otel-endpoint\` pointing at an OTLP/HTTP sink in the bench process
  (one RPC span per call, and for SubmitTask a store transaction span per group-commit batch, sent
  as JSON by the batch span processor) and one as it ships, with tracing off. Loaded as the
  authentication cost is, in alternating slices; the cost is the traced side's server CPU per call
  minus the untraced side's (median of the pairs). The sink counts the spans received after each
  run, so a gateway that dropped spans to keep up would show under one span per call. Alone:
  \`npx tsx bench/tracing-cost.ts\`.
- How the write path is loaded: all three protocols with h2load
  (HTTP/1.1 with \`--h1\`, 256 connections), each run after a 1 s warm-up on the same connections
  (no connection ramp in the figures), eight short runs of each side in the order A B B A A B ...
  This machine's speed drifts by tens of percent within seconds, so the check is on the median,
  over the rounds, of the ratio of the round's two adjacent runs: a pair shares the machine's
  state, and one disturbed pair does not move the median. The means of all runs and the server's
  CPU per call are shown beside it.
- **Memory**: the gateway process's VmRSS on a fresh gateway: idle 2 s after start, with 10,000 idle
  WatchEvents streams open (raw node:http2, 20 connections), and after they are all closed. The
  target is under 200 MB (10^6 bytes; 190.7 MiB) with the streams open; missing it fails a check.
- **Dashboard**: the web dashboard in headless Chromium (\`/usr/bin/chromium\`; the section says it was
  skipped when that is missing) on a fresh gateway holding 10,000 tasks. First view: \`/\` opened with
  the session in sessionStorage, timed in the page from navigation start until a task row and the
  live indicator are painted; 5 fresh pages, the first on an empty cache (cold), target under 1 s for
  the p50 of the others. Events: 50 SubmitTask/s for 10 s with the task list open; the page's own
  WatchEvents response is counted envelope by envelope (a wrapped \`fetch\`), and must hold every
  event sequence of the run; the first page of rows must end equal to ListTasks' 50 newest. Long
  tasks (over 50 ms; blocking time is their part beyond 50 ms) and submit-to-row delays (send to
  the row entering the DOM) show how smoothly it keeps up.

What is checked behind every figure: all HTTP statuses 2xx and no tool errors or timeouts; for h2load,
the response DATA bytes equal calls x the size of a success answer (a gRPC error is an HTTP 200 with
trailers only, which h2load counts as a success); for autocannon, every body holds a success (the
gRPC-Web trailer \`grpc-status: 0\`, the task id, or \`"success":true\`); on both gateways, GetMetrics
\`rpc_ok_total\` grows by exactly the completed calls and no other \`rpc_<code>_total\` grows, and the
task count (ListTasks \`total\`, \`tasks_submitted_total\`) grows by exactly the completed SubmitTask
calls and not at all for GetTaskStatus; GetMetrics \`fast_path_calls_total\` grows by exactly the
completed calls (and the bench's own two reads) on the fast-path gateway, and not at all on the stock
one, so each row was served by the path it is named for; 20 identical calls with a real connect-node
client of the same protocol before and after each GetTaskStatus series decode with the task (on the
peers and floors too); the HTTP/1.1 floor's bodies equal the gateway's; every watcher receives every
event; every first-event stream's first event is the submitted task's; in the fan-out, every stream
receives every event and the peer's events equal the gateway's byte for byte; every memory stream is
live (it receives a probe event), the gateway counts all 10,000 open, and none once they are closed.

`;
