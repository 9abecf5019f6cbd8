-- Conversations (protocol revision 1.3): direct rooms and group rooms are conversations
-- whose members are listed in room_members, each with the newest message they have read.
--
-- PostgreSQL port: the rebuild below (with its sqlite_sequence line) is
--   ALTER TABLE rooms DROP CONSTRAINT rooms_kind_check,
--     ADD CONSTRAINT rooms_kind_check CHECK (kind IN ('public', 'direct', 'call', 'group'));
-- and the rest is the same SQL.
PRAGMA foreign_keys = OFF;
BEGIN;

-- A new kind: 'group', a conversation of up to the room cap, its members only.
CREATE TABLE rooms_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- the name clients use on the wire: "canal1", "dm:3:7", "call:<key>", "group:<key>"
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('public', 'direct', 'call', 'group')),
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO rooms_new (id, name, kind, created_by, created_at)
    SELECT id, name, kind, created_by, created_at FROM rooms;
-- AUTOINCREMENT: ids of rooms deleted at the top are never given out again.
UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'rooms')
    WHERE name = 'rooms_new' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'rooms');
DROP TABLE rooms;
ALTER TABLE rooms_new RENAME TO rooms;

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

COMMIT;
PRAGMA foreign_keys = ON;
