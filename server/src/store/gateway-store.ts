/** The whole store the gateway runs on: tasks and their events, plus keys, sessions and the audit log. */
import type { AccessStore } from "./access-store.js";
import type { TaskStore } from "./task-store.js";

/** Every backend implements both halves on one database. */
export type GatewayStore = TaskStore & AccessStore;
