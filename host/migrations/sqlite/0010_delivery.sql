-- Delivery: a queued publication is handed to its provider once. The worker
-- marks it `delivering` before the call, so a crash mid-call leaves it there
-- and it is never sent blindly again: it becomes `unknown` for the operator
-- to reconcile. `failed` means it never reached the provider (and the charge
-- was reversed). SQLite cannot alter a CHECK, so the table is rebuilt.
CREATE TABLE publications_new (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id),
    draft_id         TEXT NOT NULL REFERENCES drafts (id),
    destination_id   TEXT NOT NULL REFERENCES destinations (id),
    decision_id      TEXT NOT NULL REFERENCES decisions (id),
    state            TEXT NOT NULL CHECK (state IN ('queued', 'delivering', 'delivered', 'failed', 'unknown')),
    charge_cents     INTEGER NOT NULL CHECK (charge_cents >= 0),
    created_at       TEXT NOT NULL,
    provider_post_id TEXT,
    detail           TEXT,
    updated_at       TEXT
);
INSERT INTO publications_new (id, workspace_id, draft_id, destination_id, decision_id, state, charge_cents, created_at)
    SELECT id, workspace_id, draft_id, destination_id, decision_id, state, charge_cents, created_at FROM publications;
DROP TABLE publications;
ALTER TABLE publications_new RENAME TO publications;
CREATE INDEX publications_by_decision ON publications (decision_id);
-- One partial index per state the worker looks for: a query's `state = 'queued'`
-- matches its index exactly (SQLite cannot prove it implies an IN list).
CREATE INDEX publications_queued ON publications (created_at, id) WHERE state = 'queued';
CREATE INDEX publications_delivering ON publications (updated_at) WHERE state = 'delivering';
