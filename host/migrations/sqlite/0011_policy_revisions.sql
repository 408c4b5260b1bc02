-- Policy revisions. The gate components every revision names are held here,
-- content-addressed, so reviewers read and sign off exactly what runs; the
-- last activation names the revision every host process sharing the database
-- runs. Each decision keeps its gate request, for replay against a candidate.
CREATE TABLE gate_components (
    digest     TEXT PRIMARY KEY,
    bytes      BLOB NOT NULL,
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE policy_revisions (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    gates      TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE policy_activations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    revision_id TEXT NOT NULL REFERENCES policy_revisions (id),
    action      TEXT NOT NULL CHECK (action IN ('bootstrap', 'reload', 'upload', 'rollback')),
    actor       TEXT NOT NULL,
    note        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE gate_sign_offs (
    digest      TEXT NOT NULL REFERENCES gate_components (digest),
    reviewer_id TEXT NOT NULL REFERENCES reviewers (id),
    note        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (digest, reviewer_id)
);

ALTER TABLE decisions ADD COLUMN request TEXT;
