-- Access control: API keys and session tokens (only salted hashes of their secrets), and the
-- append-only audit log, a hash chain (each record carries the hash of the one before).
CREATE TABLE api_keys (
  id          TEXT    PRIMARY KEY,
  name        TEXT    NOT NULL,
  scopes      TEXT    NOT NULL,
  salt        TEXT    NOT NULL,
  hash        TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER,
  created_by  TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE sessions (
  id          TEXT    PRIMARY KEY,
  key_id      TEXT    NOT NULL REFERENCES api_keys (id),
  client_id   TEXT    NOT NULL DEFAULT '',
  scopes      TEXT    NOT NULL,
  salt        TEXT    NOT NULL,
  hash        TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE INDEX sessions_by_key ON sessions (key_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE audit_log (
  sequence        INTEGER PRIMARY KEY,
  time            INTEGER NOT NULL,
  principal       TEXT    NOT NULL,
  key_id          TEXT    NOT NULL DEFAULT '',
  client_address  TEXT    NOT NULL DEFAULT '',
  method          TEXT    NOT NULL,
  task_id         TEXT    NOT NULL DEFAULT '',
  code            TEXT    NOT NULL,
  request_id      TEXT    NOT NULL DEFAULT '',
  detail          TEXT    NOT NULL DEFAULT '',
  prev_hash       TEXT    NOT NULL,
  hash            TEXT    NOT NULL
);
CREATE INDEX audit_by_principal ON audit_log (principal, sequence);
CREATE INDEX audit_by_task ON audit_log (task_id, sequence) WHERE task_id <> '';
