-- Dispatch to daemons: who runs a task, its attempts, the lost-task policy, cancel deadlines, and
-- the highest output line number stored (to drop lines a reconnecting daemon sends again).
ALTER TABLE tasks ADD COLUMN daemon_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
ALTER TABLE tasks ADD COLUMN on_lost TEXT NOT NULL DEFAULT 'fail';
ALTER TABLE tasks ADD COLUMN attempts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN cancel_deadline INTEGER;
ALTER TABLE tasks ADD COLUMN output_seq INTEGER NOT NULL DEFAULT 0;

CREATE INDEX tasks_by_daemon ON tasks (daemon_id, status) WHERE daemon_id <> '';
CREATE INDEX tasks_by_cancel_deadline ON tasks (cancel_deadline) WHERE cancel_deadline IS NOT NULL;

-- Daemons that have connected. `connected` is 1 while a gateway holds its stream; `last_seen` is
-- its last hello or heartbeat; `disconnected_at` is when its stream closed.
CREATE TABLE daemons (
  id              TEXT    PRIMARY KEY,
  hostname        TEXT    NOT NULL DEFAULT '',
  version         TEXT    NOT NULL DEFAULT '',
  capacity        INTEGER NOT NULL DEFAULT 1,
  labels          TEXT    NOT NULL DEFAULT '{}',
  connected       INTEGER NOT NULL DEFAULT 0,
  connected_at    INTEGER NOT NULL,
  last_seen       INTEGER NOT NULL,
  disconnected_at INTEGER
);
