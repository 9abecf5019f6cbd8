-- Conversations (protocol revision 1.3): direct rooms and group rooms are conversations
-- whose members are listed in room_members, each with the newest message they have read.
-- (PostgreSQL twin of migrations/sqlite/2026-12-05-000005_conversations: a CHECK constraint
-- changes in place here, no table rebuild.)

-- A new kind: 'group', a conversation of up to the room cap, its members only.
ALTER TABLE rooms DROP CONSTRAINT rooms_kind_check,
    ADD CONSTRAINT rooms_kind_check CHECK (kind IN ('public', 'direct', 'call', 'group'));

-- The newest msg_id the member has read (0: none); unread = their room's later messages
-- from others. Only a conversation's (direct, group) is kept up to date.
ALTER TABLE room_members ADD COLUMN last_read_msg_id BIGINT NOT NULL DEFAULT 0;

-- Both people of every existing direct room become its members, with what is there read.
INSERT INTO room_members (room_id, user_id, joined_at, last_read_msg_id)
    SELECT r.id, u.id, r.created_at,
           COALESCE((SELECT MAX(m.id) FROM messages m WHERE m.room_id = r.id), 0)
    FROM rooms r
    JOIN users u ON r.name LIKE 'dm:' || u.id || ':%' OR r.name LIKE 'dm:%:' || u.id
    WHERE r.kind = 'direct'
      AND NOT EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = r.id AND rm.user_id = u.id);
