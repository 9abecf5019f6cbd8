-- Several nodes (issue 18): the node whose hub runs a live call, so a call frame sent to
-- another node finds it, and the call of a node that died is closed by a live one
-- (ringing: missed, once). NULL for a server that runs alone.
ALTER TABLE calls ADD COLUMN owner_node TEXT;
CREATE INDEX calls_owner_state ON calls (owner_node, state);
