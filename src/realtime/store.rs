//! [`ChatStore`]: stores chat messages with group commit, then has each message's room
//! acknowledge and deliver it.
//!
//! While one batch is being written on the blocking pool, messages arriving from every
//! session queue up; they are written together in the next transaction (one prepared
//! insert per message, see [`db::messages::insert_batch`]). Under load many messages share
//! one SQLite commit; with no load a message is written at once. While traffic flows (a
//! commit ends with messages already waiting) the next commit waits `GATHER` for more,
//! unless `GATHER_UP_TO` already wait: on a busy core the messages otherwise trickle into
//! many small commits, each paying the transaction's fixed cost and its fsync (in the `chat`
//! benchmark 17–20 → 80–86 messages per commit, −10 % CPU per message; docs/benchmarks.md).
//! The commits are counted in `/metrics`. Once a batch is committed each room gets its messages of the batch in one [`ChatStored`], and queues every
//! sender's ack and every member's `chat.message` in one turn, so what a member gets from
//! one commit leaves in one write. Nothing is acknowledged before its transaction has
//! committed.
//!
//! A conversation's message (a direct or group room, protocol revision 1.3) goes to every
//! session of every member, through presence, joined or not: that is how the other person
//! learns of it at once. Its room then only sends the sender's ack. In the same job as the
//! commit, each sender's read position moves to their own new message.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use actix::prelude::*;

use super::{
    history::chat_view_from,
    metrics::RealtimeMetrics,
    presence::{PresenceActor, SendToUser},
    protocol::{error_frame, FrameId, RoomName, RoomRef, ServerMsg, UserId, UserRef},
    room::{ChatStored, Committed, RoomActor},
    ws_error, Deliver, Delivery,
};
use crate::{
    db::{
        self,
        models::{Message as StoredMessage, NewMessage},
        DbPool,
    },
    error::ApiError,
};

/// Most messages written in one transaction; more wait for the next one, so one commit (and
/// the acks waiting for it) stays short after a stall.
const MAX_BATCH: usize = 1_000;

/// How long the next commit waits for more messages while traffic flows (see [`ChatStore`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);
/// Messages already waiting from which the next commit starts at once.
const GATHER_UP_TO: usize = 64;

/// Where the outcome of storing one message goes.
pub(crate) struct ChatReply {
    /// The `chat.send` frame's id, echoed by its ack (or error).
    pub id: Option<FrameId>,
    /// The sender's queue: the ack reaches it even if the sender left the room meanwhile.
    pub sender: Delivery,
    /// The sender as `chat.message` shows them.
    pub from: UserRef,
    /// The room that delivers the message to its members.
    pub room: Addr<RoomActor>,
    pub room_name: RoomName,
}

impl ChatReply {
    /// Tells the sender that their message was not stored: `error` (its `id`) instead of an
    /// ack, with `text` (from [`ws_error`], computed once per failure).
    fn fail(&self, e: &ApiError, text: &str) {
        let frame = error_frame(self.id.as_ref(), e.code(), text);
        self.sender.do_send(Deliver(frame));
    }
}

/// Stores one message (idempotent per sender and `client_msg_id`); the ack, or an error,
/// goes to `reply.sender`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StoreChat {
    pub new: NewMessage,
    pub reply: ChatReply,
}

/// Writes chat messages in batches, one transaction at a time.
pub struct ChatStore {
    pool: DbPool,
    /// Delivers conversations' messages to their members' sessions.
    presence: Addr<PresenceActor>,
    metrics: Arc<RealtimeMetrics>,
    /// Messages waiting for the next transaction, in arrival order.
    pending: Vec<StoreChat>,
    /// A batch is being written.
    busy: bool,
    /// Several nodes (`--broker`): each message goes out with the id of its room's
    /// message before it, for the other nodes' ordering (see [`super::room_cluster`]).
    cluster: bool,
}

impl ChatStore {
    /// A store writing to `pool`, counting its commits in `metrics`.
    /// `cluster`: with a broker (several nodes).
    pub fn new(
        pool: DbPool,
        presence: Addr<PresenceActor>,
        metrics: Arc<RealtimeMetrics>,
        cluster: bool,
    ) -> Self {
        ChatStore {
            pool,
            presence,
            metrics,
            pending: Vec::new(),
            busy: false,
            cluster,
        }
    }

    /// Writes what is pending (up to [`MAX_BATCH`]) in one transaction, then the next batch.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        self.busy = true;
        let take = self.pending.len().min(MAX_BATCH);
        let (batch, replies): (Vec<NewMessage>, Vec<ChatReply>) =
            self.pending.drain(..take).map(|m| (m.new, m.reply)).unzip();
        let pool = self.pool.clone();
        let conversations: HashSet<i64> = replies
            .iter()
            .zip(&batch)
            .filter(|(reply, _)| is_conversation(&reply.room_name))
            .map(|(_, new)| new.room_id)
            .collect();
        let cluster = self.cluster;
        let write = async move {
            db::run(&pool, move |conn| {
                let results = db::messages::store_batch(conn, &batch)?;
                let members = if conversations.is_empty() {
                    HashMap::new()
                } else {
                    conversation_members(conn, &conversations, &results)
                };
                let prev = if cluster {
                    previous_ids(conn, &results, &conversations)
                } else {
                    HashMap::new()
                };
                Ok((results, members, prev))
            })
            .await
        };
        let presence = self.presence.clone();
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| {
            if res.is_ok() {
                act.metrics.chat_commit(replies.len());
            }
            answer(replies, res, &presence);
            if !act.pending.is_empty() && act.pending.len() < GATHER_UP_TO {
                // Traffic is flowing: let more messages gather before the next commit (the
                // store stays busy meanwhile, so arrivals wait for it).
                ctx.run_later(GATHER, |act, ctx| {
                    act.busy = false;
                    act.flush(ctx);
                });
            } else {
                act.busy = false;
                act.flush(ctx);
            }
        }));
    }
}

/// Whether a room is a conversation (its messages go to its members, see [`ChatStore`]).
fn is_conversation(room: &RoomName) -> bool {
    matches!(
        RoomName::parse(room.as_str()).map(|(_, kind)| kind),
        Ok(RoomRef::Direct(..) | RoomRef::Group)
    )
}

/// After a commit: the members of the batch's conversations, by room id, and each sender's
/// read position moved to their own new message. The messages are stored whatever happens
/// here: a failure is logged, and those conversations' messages reach only the room.
fn conversation_members(
    conn: &mut crate::db::DbConnection,
    rooms: &HashSet<i64>,
    results: &[diesel::QueryResult<(StoredMessage, bool)>],
) -> HashMap<i64, Vec<i64>> {
    let sent: Vec<(i64, i64, i64)> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(m, is_new)| *is_new && rooms.contains(&m.room_id))
        .map(|(m, _)| (m.room_id, m.sender_id, m.id))
        .collect();
    let ids: Vec<i64> = rooms.iter().copied().collect();
    match db::conversations::sent(conn, &sent)
        .and_then(|()| db::conversations::members_of(conn, &ids))
    {
        Ok(members) => members,
        Err(e) => {
            log::error!("conversation members after a chat commit: {e}");
            HashMap::new()
        }
    }
}

/// After a commit, with several nodes: the id of the room's message before each new message
/// of a room that delivers its own messages (not a conversation). The messages are stored
/// whatever happens here: on failure they go out with `i64::MAX` (unknown), which makes
/// every node read the room's messages from the database before delivering them.
fn previous_ids(
    conn: &mut crate::db::DbConnection,
    results: &[diesel::QueryResult<(StoredMessage, bool)>],
    conversations: &HashSet<i64>,
) -> HashMap<i64, i64> {
    let stored: Vec<(i64, i64)> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(m, is_new)| *is_new && !conversations.contains(&m.room_id))
        .map(|(m, _)| (m.room_id, m.id))
        .collect();
    if stored.is_empty() {
        return HashMap::new();
    }
    db::messages::previous_ids(conn, &stored).unwrap_or_else(|e| {
        log::error!("previous message ids after a chat commit: {e}");
        HashMap::new()
    })
}

/// A committed batch: one result per message, the members of its conversations, and (with
/// several nodes) each new message's previous one in its room.
type StoredBatch = (
    Vec<diesel::QueryResult<(StoredMessage, bool)>>,
    HashMap<i64, Vec<i64>>,
    HashMap<i64, i64>,
);

/// Sends each room its committed messages (acks and deliveries), and each failed message's
/// sender an error instead of an ack.
fn answer(
    replies: Vec<ChatReply>,
    res: Result<StoredBatch, ApiError>,
    presence: &Addr<PresenceActor>,
) {
    let (results, members, prev) = match res {
        Ok(done) => done,
        Err(e) => {
            // `ws_error` logs an internal error: once for the batch.
            let text = ws_error(&e);
            for reply in replies {
                reply.fail(&e, &text);
            }
            return;
        }
    };
    // By room id: one `ChatStored` per room.
    let mut rooms: HashMap<i64, (Addr<RoomActor>, Vec<Committed>)> = HashMap::new();
    for (reply, result) in replies.into_iter().zip(results) {
        let (msg, is_new) = match result {
            Ok(stored) => stored,
            Err(e) => {
                let e = ApiError::from(e);
                reply.fail(&e, &ws_error(&e));
                continue;
            }
        };
        let ack = ServerMsg::Ack {
            id: reply.id.as_ref(),
            msg_id: Some(msg.id),
            created_at: Some(msg.created_at),
        }
        .encode();
        // A retry was delivered the first time: it only gets its ack again.
        let room_id = msg.room_id;
        let msg_id = msg.id;
        let mut message = is_new.then(|| {
            let view = chat_view_from(reply.room_name, msg, reply.from);
            ServerMsg::ChatMessage(&view).encode()
        });
        if let Some(users) = members.get(&room_id) {
            // A conversation's: to its members' sessions, wherever they are.
            if let Some(frame) = message.take() {
                for user in users {
                    presence.do_send(SendToUser {
                        user_id: UserId(*user),
                        frame: frame.clone(),
                        except: None,
                    });
                }
            }
        }
        rooms
            .entry(room_id)
            .or_insert_with(|| (reply.room, Vec::new()))
            .1
            .push(Committed {
                sender: reply.sender,
                ack,
                message,
                msg_id,
                prev: prev.get(&msg_id).copied().unwrap_or(i64::MAX),
            });
    }
    for (room, committed) in rooms.into_values() {
        room.do_send(ChatStored(committed));
    }
}

impl Actor for ChatStore {
    type Context = Context<Self>;
}

impl Handler<StoreChat> for ChatStore {
    type Result = ();

    /// Queues the message: written at once when no batch is being written, else with the
    /// next batch.
    fn handle(&mut self, msg: StoreChat, ctx: &mut Self::Context) {
        self.pending.push(msg);
        if !self.busy {
            self.flush(ctx);
        }
    }
}
