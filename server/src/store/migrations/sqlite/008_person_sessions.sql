-- Session tokens of people signed in through an OpenID provider: they have no API key (key_id is
-- NULL) and name the person by issuer and subject instead, with the e-mail they signed in with.
-- SQLite cannot drop a NOT NULL constraint in place, so the table is rebuilt.
CREATE TABLE sessions_new (
  id          TEXT    PRIMARY KEY,
  key_id      TEXT    REFERENCES api_keys (id),
  client_id   TEXT    NOT NULL DEFAULT '',
  scopes      TEXT    NOT NULL,
  salt        TEXT    NOT NULL,
  hash        TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER,
  issuer      TEXT    NOT NULL DEFAULT '',
  subject     TEXT    NOT NULL DEFAULT '',
  email       TEXT    NOT NULL DEFAULT ''
);
INSERT INTO sessions_new (id, key_id, client_id, scopes, salt, hash, created_at, expires_at, revoked_at)
  SELECT id, key_id, client_id, scopes, salt, hash, created_at, expires_at, revoked_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_by_key ON sessions (key_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_person ON sessions (issuer, subject) WHERE subject <> '';
