DROP INDEX calls_owner_state;
ALTER TABLE calls DROP COLUMN owner_node;
