-- Usage: every API-key request attributed to its key, and each key's rate limit.
ALTER TABLE tokens ADD COLUMN rate_limit_per_minute BIGINT NOT NULL DEFAULT 600;

CREATE TABLE usage (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES tokens (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    status       BIGINT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX usage_by_key ON usage (key_id, seq);
