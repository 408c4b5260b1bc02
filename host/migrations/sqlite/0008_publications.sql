-- Publications, their charges in the ledger, and idempotency keys.
-- The ledger now also holds charges (and, later, reversals): SQLite cannot
-- alter a CHECK, so the table is rebuilt with its rows.
CREATE TABLE ledger_new (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    kind                TEXT NOT NULL CHECK (kind IN ('top_up', 'charge', 'reversal')),
    amount_cents        INTEGER NOT NULL,
    balance_after_cents INTEGER NOT NULL CHECK (balance_after_cents >= 0),
    reference           TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    UNIQUE (workspace_id, reference)
);
INSERT INTO ledger_new SELECT * FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;

CREATE TABLE publications (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    draft_id       TEXT NOT NULL REFERENCES drafts (id),
    destination_id TEXT NOT NULL REFERENCES destinations (id),
    decision_id    TEXT NOT NULL REFERENCES decisions (id),
    state          TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'failed')),
    charge_cents   INTEGER NOT NULL CHECK (charge_cents >= 0),
    created_at     TEXT NOT NULL
);

CREATE TABLE idempotency (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    decision_id  TEXT NOT NULL REFERENCES decisions (id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
