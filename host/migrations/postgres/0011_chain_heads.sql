-- Each workspace names the head of its decision chain: a decision locks the
-- workspace row, reads the head, and writes its rows and the new head in one
-- statement, so the lock is held for two round trips instead of one per row.
ALTER TABLE workspaces ADD COLUMN chain_head TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';
UPDATE workspaces w SET chain_head = last.hash
FROM (SELECT DISTINCT ON (workspace_id) workspace_id, hash FROM decisions ORDER BY workspace_id, seq DESC) last
WHERE last.workspace_id = w.id;
