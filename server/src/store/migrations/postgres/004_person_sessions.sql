-- Session tokens of people signed in through an OpenID provider, as SQLite migration 008: they have
-- no API key (key_id is NULL) and name the person by issuer and subject, with their e-mail.
ALTER TABLE sessions ALTER COLUMN key_id DROP NOT NULL;
ALTER TABLE sessions ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN email TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_person ON sessions (issuer, subject) WHERE subject <> '';
