-- Runs a Spage core executes on its own. `origin` says how a task came to be: 'api' (submitted,
-- queued for a daemon) or 'core' (registered by the core that runs it, never queued). Tasks a core
-- registered before this migration are those whose first event is task.registered.
ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
UPDATE tasks SET origin = 'core'
 WHERE (SELECT type FROM events WHERE task_id = tasks.id ORDER BY sequence LIMIT 1) = 'task.registered';

-- The queue holds submitted tasks only.
CREATE INDEX tasks_queue ON tasks (priority DESC, position) WHERE status = 1 AND origin = 'api';

-- Liveness of the progress streams of core-only runs (no daemon). `open` is 1 while a gateway
-- holds a stream of the run, and that gateway renews `seen_at` while it does; when the run's last
-- stream ends, `ended_at` and `end_kind` (closed, canceled or dropped) say when and how. The row of
-- a run goes when the run ends.
CREATE TABLE core_streams (
  task_id  TEXT    PRIMARY KEY,
  open     INTEGER NOT NULL,
  seen_at  INTEGER NOT NULL,
  ended_at INTEGER,
  end_kind TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
