/**
 * Reference peer: a bare connect-node server (connectNodeAdapter on http2.createServer, h2c only)
 * implementing only SpageAPI.GetTaskStatus, from an in-memory map.
 */
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { announce, answersFromEnv } from "./peer-task.js";

const answers = answersFromEnv();

const handler = connectNodeAdapter({
  routes: (router) =>
    router.rpc(SpageAPI.method.getTaskStatus, (req) => {
      const res = answers.get(req.taskId);
      if (!res) throw new ConnectError(`task ${req.taskId} not found`, Code.NotFound);
      return res;
    }),
});

const server = http2.createServer(handler);
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  announce(typeof addr === "object" && addr ? addr.port : 0);
});
process.once("SIGTERM", () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
