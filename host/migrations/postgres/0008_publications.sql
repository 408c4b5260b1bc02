-- Publications, their charges in the ledger, and idempotency keys.
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN ('top_up', 'charge', 'reversal'));

CREATE TABLE publications (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    draft_id       TEXT NOT NULL REFERENCES drafts (id),
    destination_id TEXT NOT NULL REFERENCES destinations (id),
    decision_id    TEXT NOT NULL REFERENCES decisions (id),
    state          TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'failed')),
    charge_cents   BIGINT NOT NULL CHECK (charge_cents >= 0),
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
