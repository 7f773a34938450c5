-- Tasks and their event log. Times are milliseconds since the Unix epoch (UTC); maps are JSON.
CREATE TABLE tasks (
  position        INTEGER PRIMARY KEY,           -- insertion order: queue order within a priority, paging key
  id              TEXT    NOT NULL UNIQUE,
  type            TEXT    NOT NULL,
  priority        INTEGER NOT NULL,
  status          INTEGER NOT NULL,
  progress        REAL    NOT NULL DEFAULT 0,
  payload         TEXT    NOT NULL DEFAULT '{}',
  metadata        TEXT    NOT NULL DEFAULT '{}',
  result          TEXT    NOT NULL DEFAULT '{}',
  error           TEXT    NOT NULL DEFAULT '',
  hosts           TEXT    NOT NULL DEFAULT '[]',
  timeout_seconds INTEGER NOT NULL DEFAULT 0,
  request_hash    TEXT    NOT NULL,
  version         INTEGER NOT NULL DEFAULT 1,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  started_at      INTEGER,
  completed_at    INTEGER,
  deadline_at     INTEGER
);

-- The queue: pending tasks by priority, then first in, first out.
CREATE INDEX tasks_by_status ON tasks (status, priority DESC, position);
CREATE INDEX tasks_by_type ON tasks (type, position);
CREATE INDEX tasks_by_created ON tasks (created_at);
CREATE INDEX tasks_by_deadline ON tasks (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX tasks_by_completed ON tasks (completed_at) WHERE completed_at IS NOT NULL;

-- The event log: sequence is the rowid, so it is gap-free (a rolled-back insert frees its number).
CREATE TABLE events (
  sequence   INTEGER PRIMARY KEY,
  type       TEXT    NOT NULL,
  task_id    TEXT    NOT NULL DEFAULT '',
  data       TEXT    NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);

CREATE INDEX events_by_task ON events (task_id, sequence);
