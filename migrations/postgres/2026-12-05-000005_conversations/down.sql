-- Group conversations go with their messages; direct rooms had no members before.
DELETE FROM room_members WHERE room_id IN (SELECT id FROM rooms WHERE kind = 'direct');

DELETE FROM messages WHERE room_id IN (SELECT id FROM rooms WHERE kind = 'group');
DELETE FROM room_members WHERE room_id IN (SELECT id FROM rooms WHERE kind = 'group');
UPDATE calls SET room_id = NULL WHERE room_id IN (SELECT id FROM rooms WHERE kind = 'group');
DELETE FROM rooms WHERE kind = 'group';

ALTER TABLE rooms DROP CONSTRAINT rooms_kind_check,
    ADD CONSTRAINT rooms_kind_check CHECK (kind IN ('public', 'direct', 'call'));

ALTER TABLE room_members DROP COLUMN last_read_msg_id;
