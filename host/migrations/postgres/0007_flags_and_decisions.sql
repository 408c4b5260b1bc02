-- The operator's safety flags (one row; live publishing blocked by default),
-- and the decision records: every decision and dry run, with every gate's
-- verdict, chained per workspace by hash so tampering shows.
CREATE TABLE flags (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    publishing_mode TEXT NOT NULL CHECK (publishing_mode IN ('preview', 'live')),
    kill_switch     BOOLEAN NOT NULL,
    blocked_terms   TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
INSERT INTO flags (id, publishing_mode, kill_switch, blocked_terms, updated_at) VALUES (1, 'preview', FALSE, '[]', '1970-01-01T00:00:00Z');

CREATE TABLE decisions (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    kind           TEXT NOT NULL CHECK (kind IN ('dry_run', 'publication')),
    key_id         TEXT,
    draft_id       TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    policy         TEXT NOT NULL,
    revision       TEXT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('allow', 'deny', 'pending')),
    gates          TEXT NOT NULL,
    charge_cents   BIGINT NOT NULL CHECK (charge_cents >= 0),
    created_at     TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE
);
CREATE INDEX decisions_by_workspace ON decisions (workspace_id, seq);
