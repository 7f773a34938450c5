-- Dependencies, workflows and retries. `depends_on` lists the ids a task waits for (JSON), and
-- `dependents` the tasks waiting for it, appended when they are stored; `depth` is the longest
-- chain of dependencies below a task. `retry_of` names the task a retry repeats, `limit_hosts` the
-- hosts a run is limited to (JSON).
ALTER TABLE tasks ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN dependents TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN workflow_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN retry_of TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN limit_hosts TEXT NOT NULL DEFAULT '[]';
CREATE INDEX tasks_by_workflow ON tasks (workflow_id, position) WHERE workflow_id <> '';
