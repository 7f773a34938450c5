-- The gateways sharing this schema: each renews its row while it runs (a row not renewed for a
-- while is a gateway gone), so every gateway knows how many share the work (rate-limit shares).
CREATE TABLE gateways (
  id      TEXT   PRIMARY KEY COLLATE "C",
  seen_at BIGINT NOT NULL
);

-- Leases of work one gateway does for all (the task sweeps): held by `holder` until `until` (ms),
-- renewed by it while it runs, taken over by another once it has run out.
CREATE TABLE leases (
  name   TEXT   PRIMARY KEY COLLATE "C",
  holder TEXT   NOT NULL,
  until  BIGINT NOT NULL
);
