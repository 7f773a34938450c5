-- Who created each task: 'key:<id>' (an API key, or a session made from one), 'anonymous@<address>'
-- (a Spage core let in without credentials) or 'open' (auth off). Callers without credentials may
-- only touch runs an anonymous core registered. Runs cores registered before this migration are
-- taken as anonymous ones, so a run in flight across the upgrade can still report.
ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE tasks SET owner = 'anonymous' WHERE origin = 'core';
