-- Reviewers, minted by the operator: they read gates and decisions and sign off gate digests.
CREATE TABLE reviewers (
    id             TEXT PRIMARY KEY,
    label          TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    revoked_at     TEXT
);
