-- Destinations a customer connected through a provider's consent flow.
-- The provider token is sealed (XChaCha20-Poly1305, key from configuration)
-- and wiped on disconnect; no query the API runs ever selects it.
CREATE TABLE consents (
    state_hash   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    provider     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    used_at      TEXT
);

CREATE TABLE destinations (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id),
    provider         TEXT NOT NULL,
    connected        BOOLEAN NOT NULL,
    provider_review  TEXT NOT NULL CHECK (provider_review IN ('none', 'pending', 'approved', 'rejected')),
    sealed_token     TEXT,
    created_at       TEXT NOT NULL,
    disconnected_at  TEXT,
    CHECK (connected = (sealed_token IS NOT NULL))
);
CREATE INDEX destinations_by_workspace ON destinations (workspace_id, id);
