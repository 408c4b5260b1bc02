-- One open (pending or approved) queue item per draft content, even when
-- two submissions race.
CREATE UNIQUE INDEX approvals_open_per_content ON approvals (draft_id, content_digest) WHERE status IN ('pending', 'approved');
