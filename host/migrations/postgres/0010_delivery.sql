-- Delivery: a queued publication is handed to its provider once. The worker
-- marks it `delivering` before the call, so a crash mid-call leaves it there
-- and it is never sent blindly again: it becomes `unknown` for the operator
-- to reconcile. `failed` means it never reached the provider (and the charge
-- was reversed).
ALTER TABLE publications DROP CONSTRAINT publications_state_check;
ALTER TABLE publications ADD CONSTRAINT publications_state_check
    CHECK (state IN ('queued', 'delivering', 'delivered', 'failed', 'unknown'));
ALTER TABLE publications ADD COLUMN provider_post_id TEXT;
ALTER TABLE publications ADD COLUMN detail TEXT;
ALTER TABLE publications ADD COLUMN updated_at TEXT;
-- One partial index per state the worker looks for: a query's `state = 'queued'`
-- matches its index exactly (SQLite cannot prove it implies an IN list).
CREATE INDEX publications_queued ON publications (created_at, id) WHERE state = 'queued';
CREATE INDEX publications_delivering ON publications (updated_at) WHERE state = 'delivering';
