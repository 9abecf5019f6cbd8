//! [`RoomActor`]: one live room — its member sessions, WebRTC signaling between them and
//! chat fan-out.
//!
//! Created by the [`Hub`] on first join and stopped as soon as its last member leaves. It
//! knows members only by their [`Delivery`] handles, so nothing here assumes a member lives
//! in this process.

use actix::prelude::*;
use bytestring::ByteString;
use serde_json::value::RawValue;

use super::{
    hub::{Hub, RoomEmpty},
    presence::{CallRoomUsers, PresenceActor},
    protocol::{
        error_frame, FrameId, PeerView, RoomName, RoomRef, ServerMsg, SessionId, SignalKind,
        UserId, UserRef,
    },
    Deliver, Delivery,
};
use crate::error::{ApiError, ErrorCode};

/// One member session.
struct Member {
    peer_id: SessionId,
    user: UserRef,
    deliver: Delivery,
}

/// One live room: members, signaling relay and chat fan-out.
pub struct RoomActor {
    name: RoomName,
    kind: RoomRef,
    /// Most sessions the room holds at once (a public channel's or a call's; a conversation
    /// caps its people instead).
    cap: usize,
    /// Few members (a handful), so a vector beats a map on every lookup.
    members: Vec<Member>,
    hub: Addr<Hub>,
    presence: Addr<PresenceActor>,
}

impl RoomActor {
    /// An empty room; the first [`Join`] follows at once.
    pub fn new(
        name: RoomName,
        kind: RoomRef,
        cap: usize,
        hub: Addr<Hub>,
        presence: Addr<PresenceActor>,
    ) -> Self {
        // A conversation's people are capped when they are brought in (`conversation.invite`),
        // not its sessions: each of them may have it open on every device.
        let cap = match kind {
            RoomRef::Direct(..) | RoomRef::Group => usize::MAX,
            RoomRef::Public | RoomRef::Call => cap.max(1),
        };
        RoomActor {
            name,
            kind,
            cap,
            members: Vec::new(),
            hub,
            presence,
        }
    }

    /// Delivers one shared frame to every member but `except`.
    fn broadcast(&self, frame: &ByteString, except: Option<&SessionId>) {
        for m in &self.members {
            if Some(&m.peer_id) != except {
                m.deliver.do_send(Deliver(frame.clone()));
            }
        }
    }

    /// Tells presence who is in this call room (`in_call` is derived from it).
    fn report_call_users(&self) {
        if self.kind != RoomRef::Call {
            return;
        }
        let mut users: Vec<UserId> = self.members.iter().map(|m| m.user.id).collect();
        users.sort_unstable();
        users.dedup();
        self.presence.do_send(CallRoomUsers {
            room: self.name.clone(),
            users,
        });
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;
}

/// A session enters the room; answers the peers already there (or why it may not).
#[derive(Message)]
#[rtype(result = "Result<Vec<PeerView>, ApiError>")]
pub struct Join {
    pub peer_id: SessionId,
    pub user: UserRef,
    pub deliver: Delivery,
}

impl Handler<Join> for RoomActor {
    type Result = Result<Vec<PeerView>, ApiError>;

    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Self::Result {
        // The newcomer is polite towards everyone already here; they make the offers.
        let peers_for = |members: &[Member], me: &SessionId| -> Vec<PeerView> {
            members
                .iter()
                .filter(|m| &m.peer_id != me)
                .map(|m| PeerView {
                    peer_id: m.peer_id.clone(),
                    user: m.user.clone(),
                    polite: true,
                })
                .collect()
        };
        if self.members.iter().any(|m| m.peer_id == msg.peer_id) {
            return Ok(peers_for(&self.members, &msg.peer_id));
        }
        if self.members.len() >= self.cap {
            return Err(ApiError::Conflict(format!(
                "room '{}' is full ({} members)",
                self.name.as_str(),
                self.cap
            )));
        }
        let peers = peers_for(&self.members, &msg.peer_id);
        let newcomer = PeerView {
            peer_id: msg.peer_id.clone(),
            user: msg.user.clone(),
            polite: false,
        };
        let frame = ServerMsg::RoomPeerJoined {
            room: &self.name,
            peer: &newcomer,
        }
        .encode();
        self.broadcast(&frame, None);
        self.members.push(Member {
            peer_id: msg.peer_id,
            user: msg.user,
            deliver: msg.deliver,
        });
        self.report_call_users();
        Ok(peers)
    }
}

/// A session leaves the room (or has gone).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Leave {
    pub peer_id: SessionId,
    /// The session's connection ended (not a `room.leave`): told to the others as
    /// `dropped`, since a call's participant may come back.
    pub dropped: bool,
}

impl Handler<Leave> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        let before = self.members.len();
        self.members.retain(|m| m.peer_id != msg.peer_id);
        if self.members.len() == before {
            return;
        }
        let frame = ServerMsg::RoomPeerLeft {
            room: &self.name,
            peer_id: &msg.peer_id,
            dropped: msg.dropped,
        }
        .encode();
        self.broadcast(&frame, None);
        self.report_call_users();
        if self.members.is_empty() {
            self.hub.do_send(RoomEmpty {
                name: self.name.clone(),
                addr: ctx.address(),
            });
            ctx.stop();
        }
    }
}

/// A signaling payload for exactly one peer; `from` is set by the sending session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal {
    pub from: SessionId,
    pub to: String,
    pub kind: SignalKind,
    pub data: Box<RawValue>,
    /// The sender's frame id, for an error reply.
    pub id: Option<FrameId>,
}

impl Handler<Signal> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Signal, _: &mut Self::Context) {
        let Some(sender) = self.members.iter().find(|m| m.peer_id == msg.from) else {
            // Not (or no longer) a member: nobody to answer, nothing forwarded.
            return;
        };
        let target = self
            .members
            .iter()
            .find(|m| m.peer_id.0.as_str() == msg.to && m.peer_id != msg.from);
        match target {
            Some(target) => {
                let frame = ServerMsg::Signal {
                    room: &self.name,
                    from: &msg.from,
                    kind: msg.kind,
                    data: &msg.data,
                }
                .encode();
                target.deliver.do_send(Deliver(frame));
            }
            None => sender.deliver.do_send(Deliver(error_frame(
                msg.id.as_ref(),
                ErrorCode::NotFound,
                &format!(
                    "no peer '{}' in room '{}'",
                    msg.to.chars().take(64).collect::<String>(),
                    self.name.as_str()
                ),
            ))),
        }
    }
}

/// One stored chat message of a commit, ready to go out.
pub struct Committed {
    /// The sender's queue: gets the ack even if the sender has left the room meanwhile.
    pub sender: Delivery,
    pub ack: ByteString,
    /// `chat.message`, for every member; `None` for a retry (delivered the first time).
    pub message: Option<ByteString>,
}

/// This room's messages of one group commit, in commit order (sent by the chat store).
///
/// If the room is gone before it handles them (its last member left), dropping them still
/// sends every ack: the messages are stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChatStored(pub Vec<Committed>);

impl Drop for ChatStored {
    /// Acks the room did not send (it had stopped) still go out; a handled batch is empty.
    fn drop(&mut self) {
        for committed in self.0.drain(..) {
            committed.sender.do_send(Deliver(committed.ack));
        }
    }
}

impl Handler<ChatStored> for RoomActor {
    type Result = ();

    /// Each ack before its message, so a sender sees its ack first; all of one commit in
    /// this turn, so each member's writer sends them together.
    fn handle(&mut self, mut msg: ChatStored, _: &mut Self::Context) {
        for committed in std::mem::take(&mut msg.0) {
            committed.sender.do_send(Deliver(committed.ack));
            if let Some(frame) = &committed.message {
                self.broadcast(frame, None);
            }
        }
    }
}

/// A typing indicator from one member, for the others.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Typing {
    pub from: SessionId,
    pub user: UserRef,
}

impl Handler<Typing> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Typing, _: &mut Self::Context) {
        let frame = ServerMsg::ChatTyping {
            room: &self.name,
            from: &msg.user,
        }
        .encode();
        self.broadcast(&frame, Some(&msg.from));
    }
}
