-- Dependencies, workflows and retries, as SQLite migration 007: `depends_on` lists the ids a task
-- waits for (JSON text), `dependents` the tasks waiting for it, appended when they are stored;
-- `depth` is the longest chain of dependencies below a task. `retry_of` names the task a retry
-- repeats, `limit_hosts` the hosts a run is limited to (JSON text).
ALTER TABLE tasks ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN dependents TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN workflow_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN retry_of TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN limit_hosts TEXT NOT NULL DEFAULT '[]';
CREATE INDEX tasks_by_workflow ON tasks (workflow_id, position) WHERE workflow_id <> '';
-- WAITING (11) tasks, for the sweep that resolves those a crash left behind.
CREATE INDEX tasks_waiting ON tasks (position) WHERE status = 11;
