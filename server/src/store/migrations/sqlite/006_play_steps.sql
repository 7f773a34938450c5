-- Plays (runs reported through the play-era methods of SpageExecution): `era` is 'play' for them
-- and '' for task-era runs, `steps` holds a play's Ansible tasks (JSON, by number).
ALTER TABLE tasks ADD COLUMN era TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN steps TEXT NOT NULL DEFAULT '[]';
