-- Workspaces, their money, their tokens, and the audit trail of every change.
CREATE TABLE workspaces (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    balance_cents INTEGER NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    created_at    TEXT NOT NULL
);

CREATE TABLE tokens (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('customer', 'api_key')),
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    label          TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT,
    revoked_at     TEXT
);
CREATE INDEX tokens_by_workspace ON tokens (workspace_id, kind);

CREATE TABLE ledger (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    kind                TEXT NOT NULL CHECK (kind IN ('top_up')),
    amount_cents        INTEGER NOT NULL,
    balance_after_cents INTEGER NOT NULL CHECK (balance_after_cents >= 0),
    reference           TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (workspace_id, reference)
);

CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT REFERENCES workspaces (id),
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX audit_by_workspace ON audit (workspace_id, seq);
