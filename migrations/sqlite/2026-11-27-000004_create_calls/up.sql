-- The call log: every invitation and how it ended, so a missed call reaches its callee later.
CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- the call_id clients see
    call_key TEXT NOT NULL UNIQUE,
    room_id BIGINT REFERENCES rooms (id) ON DELETE SET NULL,
    caller_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    callee_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    media TEXT NOT NULL CHECK (media IN ('video', 'audio', 'chat')),
    state TEXT NOT NULL CHECK (state IN ('ringing', 'accepted', 'declined', 'missed', 'cancelled', 'ended')),
    created_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT,
    -- a missed call stays unseen until the callee has been told
    seen_by_callee BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX calls_callee ON calls (callee_id, created_at);
CREATE INDEX calls_caller ON calls (caller_id, created_at);
