-- Drafts and the approval queue. An approval binds to the content digest it
-- was submitted with: editing the draft afterwards voids it.
CREATE TABLE drafts (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    text           TEXT NOT NULL,
    media          TEXT NOT NULL,
    content_digest TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX drafts_by_workspace ON drafts (workspace_id, id);

CREATE TABLE approvals (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    draft_id       TEXT NOT NULL REFERENCES drafts (id),
    content_digest TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    submitted_by   TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    decided_at     TEXT
);
CREATE INDEX approvals_by_workspace ON approvals (workspace_id, id);
CREATE INDEX approvals_by_draft ON approvals (draft_id, created_at);
