//! [`RoomActor`]: one live room — its member sessions, WebRTC signaling between them and
//! chat fan-out.
//!
//! Created by the [`Hub`] on first join and stopped as soon as its last member leaves. It
//! knows members only by their [`Delivery`] handles, so nothing here assumes a member lives
//! in this process.
//!
//! With several nodes (`--broker`) each node has its own actor for a room while it has
//! members there; they keep each other informed over the room's channel, and repair what
//! pub/sub lost from Redis and the database ([`super::room_cluster`]). The members of the
//! other nodes count for the peers lists and the cap, and get signals, typing and chat.

use std::collections::{BTreeMap, HashSet};

use actix::prelude::*;
use bytestring::ByteString;
use serde_json::value::RawValue;

use super::{
    broker::{ClusterEvent, NodeId},
    history::room_page,
    hub::{Hub, RoomEmpty},
    presence::{CallRoomUsers, PresenceActor, RoomUsers},
    protocol::{
        error_frame, FrameId, PeerView, RoomName, RoomRef, ServerMsg, SessionId, SignalKind,
        UserId, UserRef,
    },
    room_cluster::{
        polite_towards, MemberEntry, RemoteEvent, RoomDown, RoomEvent, RoomLink, RoomUp, RECONCILE,
        SETTLE, STALE_MS,
    },
    Deliver, Delivery,
};
use crate::{
    db::{self, messages::Cursor},
    error::{ApiError, ErrorCode},
};

/// One member session.
struct Member {
    peer_id: SessionId,
    user: UserRef,
    deliver: Delivery,
    /// When it joined (ms since the epoch): its role towards members of other nodes.
    joined_at: i64,
}

/// A member session on another node.
struct RemoteMember {
    peer_id: SessionId,
    user: UserRef,
    node: NodeId,
    /// When it joined, by its node's clock: see [`polite_towards`].
    joined_at: i64,
}

/// What a room actor keeps about the room's other nodes (only with a broker).
struct Cluster {
    link: RoomLink,
    /// The members on other nodes, as their events and the room's Redis hash tell.
    remote: Vec<RemoteMember>,
    /// The room's id in the database, for chat catch-up (`None`: a conversation, whose
    /// messages reach its members through presence, or a room not stored).
    room_id: Option<i64>,
    /// The last chat message given to this node's members: every later one goes out in
    /// `msg_id` order, none twice.
    delivered: i64,
    /// Messages that arrived after a gap, waiting for the messages before them (live, or
    /// from the database read that fills the gap).
    waiting: BTreeMap<i64, (i64, ByteString)>,
    /// A database read of missed messages is running.
    fetching: bool,
    /// A gap is open and the database will be read if it is still open after [`GAP_WAIT`].
    gap_timer: bool,
    /// Remote members the last read of the hash did not list: dropped if the next one does
    /// not either (their leave was lost).
    unlisted: HashSet<SessionId>,
    /// This node counts the room in the cluster's live rooms: no member is on a node whose
    /// id sorts before this one's (each room counts on exactly one node).
    counted_here: bool,
}

/// How long a gap in a room's chat (a message whose previous one has not come) may wait for
/// the missing messages to arrive over Redis before they are read from the database.
const GAP_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

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
    /// The other nodes' side of the room (`None`: this process serves alone).
    cluster: Option<Cluster>,
}

impl RoomActor {
    /// An empty room; the first [`Join`] follows at once. `link`: the way to the other
    /// nodes (`--broker`).
    pub fn new(
        name: RoomName,
        kind: RoomRef,
        cap: usize,
        hub: Addr<Hub>,
        presence: Addr<PresenceActor>,
        link: Option<RoomLink>,
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
            cluster: link.map(|link| Cluster {
                link,
                remote: Vec::new(),
                room_id: None,
                delivered: 0,
                waiting: BTreeMap::new(),
                gap_timer: false,
                fetching: false,
                unlisted: HashSet::new(),
                counted_here: false,
            }),
        }
    }

    /// How many members the room has on every node.
    fn size(&self) -> usize {
        self.members.len() + self.cluster.as_ref().map_or(0, |c| c.remote.len())
    }

    /// Tells the other nodes' actors of this room `event` (nothing without a broker).
    fn publish(&self, event: &RoomEvent) {
        if let Some(cluster) = &self.cluster {
            cluster.link.publish(&self.name, event);
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

    /// Tells presence who is in this room, here and on the other nodes: people sharing a room
    /// follow each other's presence (protocol revision 1.2), and a call room's people are
    /// `in_call`.
    fn report_users(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            let me = cluster.link.broker.node();
            let counted = !self.members.is_empty() && cluster.remote.iter().all(|m| &m.node > me);
            if counted != cluster.counted_here {
                cluster.counted_here = counted;
                cluster.link.metrics.room_counted_here(counted);
            }
        }
        let remote = self.cluster.iter().flat_map(|c| &c.remote);
        let mut users: Vec<UserId> = self
            .members
            .iter()
            .map(|m| m.user.id)
            .chain(remote.map(|m| m.user.id))
            .collect();
        users.sort_unstable();
        users.dedup();
        if self.kind == RoomRef::Call {
            // Who is in this call room, on every node (`in_call` is derived from it): a
            // member here is in a call with a member on another node.
            self.presence.do_send(CallRoomUsers {
                room: self.name.clone(),
                users: users.clone(),
            });
        }
        self.presence.do_send(RoomUsers {
            room: self.name.clone(),
            users,
        });
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    /// With a broker: registers with the node's room router (which subscribes to the room's
    /// channel), then reads the members of the other nodes and where the room's chat stands
    /// before taking the first [`Join`] (`wait`: nothing else is handled meanwhile).
    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        cluster.link.router.do_send(RoomUp {
            name: self.name.clone(),
            addr: ctx.address(),
        });
        let broker = cluster.link.broker.clone();
        let key = cluster.link.members_key(&self.name);
        let chat = self.chat_position();
        let init = async move { (RoomLink::members(broker, key).await, chat.await) };
        ctx.wait(init.into_actor(self).map(|(members, room), act, ctx| {
            act.chat_found(room);
            if let Some(members) = members {
                act.reconcile(members, ctx);
            }
        }));
        ctx.run_later(SETTLE, |act, ctx| act.repair(ctx));
        ctx.run_interval(RECONCILE, |act, ctx| act.repair(ctx));
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if let Some(cluster) = &mut self.cluster {
            if std::mem::take(&mut cluster.counted_here) {
                cluster.link.metrics.room_counted_here(false);
            }
            cluster.link.router.do_send(RoomDown {
                name: self.name.clone(),
                addr: ctx.address(),
            });
        }
        Running::Stop
    }
}

/// The several-node side of a room (every method is a no-op without a broker).
impl RoomActor {
    /// Where the room's chat stands in the database: the room's id and its latest message
    /// (`None`: a conversation, a room not stored, or the database failed).
    fn chat_position(&self) -> impl std::future::Future<Output = Option<(i64, i64)>> + 'static {
        let chat = matches!(self.kind, RoomRef::Public | RoomRef::Call);
        let pool = self.cluster.as_ref().map(|c| c.link.pool.clone());
        let name = self.name.clone();
        async move {
            let pool = pool.filter(|_| chat)?;
            let lookup = name.clone();
            db::run(&pool, move |conn| {
                let Some(room) = db::rooms::find_by_name(conn, lookup.as_str())? else {
                    return Ok(None);
                };
                Ok(Some((
                    room.id,
                    db::messages::last_id(conn, room.id)?.unwrap_or(0),
                )))
            })
            .await
            .map_err(|e| log::warn!("room {}: cannot read its chat: {e}", name.as_str()))
            .ok()
            .flatten()
        }
    }

    /// The chat's position is known: from now on messages go out in order, after
    /// `delivered` (what went out before, without an order, stays delivered).
    fn chat_found(&mut self, room: Option<(i64, i64)>) {
        if let (Some(cluster), Some((room_id, last))) = (&mut self.cluster, room) {
            cluster.room_id = Some(room_id);
            cluster.delivered = cluster.delivered.max(last);
        }
    }

    /// Re-reads the members of every node from Redis and catches up the chat from the
    /// database (every [`RECONCILE`], and on [`ClusterEvent::Resync`]).
    fn repair(&mut self, ctx: &mut Context<Self>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        if cluster.room_id.is_none() && matches!(self.kind, RoomRef::Public | RoomRef::Call) {
            // Its start could not read it (or the room was not stored yet): again.
            let chat = self.chat_position();
            ctx.spawn(
                chat.into_actor(self)
                    .map(|room, act, _| act.chat_found(room)),
            );
        }
        let Some(cluster) = &self.cluster else {
            return;
        };
        // This node's entries first, written again: they stay fresh, and come back after a
        // Redis that lost them.
        cluster.link.register(&self.name, self.own_entries());
        let read = RoomLink::members(
            cluster.link.broker.clone(),
            cluster.link.members_key(&self.name),
        );
        ctx.spawn(read.into_actor(self).map(|members, act, ctx| {
            if let Some(members) = members {
                act.reconcile(members, ctx);
            }
        }));
        self.fetch(ctx);
    }

    /// This node's members as entries of the room's hash, written now.
    fn own_entries(&self) -> Vec<(SessionId, MemberEntry)> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        let (node, at) = (cluster.link.broker.node(), db::now_ms());
        self.members
            .iter()
            .map(|m| {
                let entry = MemberEntry {
                    user: m.user.clone(),
                    node: node.clone(),
                    at,
                    joined_at: m.joined_at,
                };
                (m.peer_id.clone(), entry)
            })
            .collect()
    }

    /// Brings the remote members in line with the room's hash `listed`: those of live
    /// nodes it lists are members; one it no longer lists (or lists with an entry older
    /// than [`STALE_MS`]) twice in a row has left. Leftovers are removed from the hash:
    /// this node's own entries that are no longer members (a leave's HDEL that overtook its
    /// join's HSET, or was lost) and stale ones.
    fn reconcile(&mut self, listed: Vec<(SessionId, MemberEntry)>, _: &mut Context<Self>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let me = cluster.link.broker.node().clone();
        let alive: HashSet<NodeId> = cluster.link.broker.peers().into_iter().collect();
        let mut stale = Vec::new();
        let mut joined = Vec::new();
        let mut seen = HashSet::new();
        let oldest = db::now_ms() - STALE_MS;
        for (peer, entry) in listed {
            if entry.node == me {
                if !self.members.iter().any(|m| m.peer_id == peer) {
                    stale.push(peer);
                }
                continue;
            }
            if entry.at < oldest {
                // Not written again by its node: a leftover (its node may be gone too).
                stale.push(peer);
                continue;
            }
            seen.insert(peer.clone());
            // A node not seen alive yet (just started) or gone (dropped on `NodeGone`):
            // its entries wait.
            if alive.contains(&entry.node) && !cluster.remote.iter().any(|m| m.peer_id == peer) {
                joined.push(RemoteMember {
                    peer_id: peer,
                    user: entry.user,
                    node: entry.node,
                    joined_at: entry.joined_at,
                });
            }
        }
        cluster.link.unregister(&self.name, stale);
        let unlisted: HashSet<SessionId> = cluster
            .remote
            .iter()
            .filter(|m| !seen.contains(&m.peer_id))
            .map(|m| m.peer_id.clone())
            .collect();
        let left: Vec<SessionId> = unlisted.intersection(&cluster.unlisted).cloned().collect();
        cluster.unlisted = unlisted;
        let mut changed = !left.is_empty();
        for member in joined {
            changed |= self.remote_joined(member);
        }
        for peer in left {
            self.remote_left(&peer, true);
        }
        if changed {
            self.report_users();
        }
    }

    /// A member of another node entered: this node's members are told, each with its role
    /// towards it ([`polite_towards`]). False if it was known already.
    fn remote_joined(&mut self, member: RemoteMember) -> bool {
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        if cluster.remote.iter().any(|m| m.peer_id == member.peer_id) {
            return false;
        }
        let frame = |polite: bool| {
            ServerMsg::RoomPeerJoined {
                room: &self.name,
                peer: &PeerView {
                    peer_id: member.peer_id.clone(),
                    user: member.user.clone(),
                    polite,
                },
            }
            .encode()
        };
        // Two frames at most, whatever the number of members.
        let (mut offers, mut waits) = (None, None);
        for m in &self.members {
            let polite = polite_towards(
                (member.joined_at, &member.peer_id),
                (m.joined_at, &m.peer_id),
            );
            let slot = if polite { &mut waits } else { &mut offers };
            let frame = slot.get_or_insert_with(|| frame(polite)).clone();
            m.deliver.do_send(Deliver(frame));
        }
        cluster.unlisted.remove(&member.peer_id);
        cluster.remote.push(member);
        true
    }

    /// `peer` (`user`, joined at `joined_at`) is a member on `node`, as an event of that
    /// node says: if it is news, this node's members and presence are told.
    fn heard_of(&mut self, node: NodeId, peer: SessionId, user: UserRef, joined_at: i64) {
        let member = RemoteMember {
            peer_id: peer,
            user,
            node,
            joined_at,
        };
        if self.remote_joined(member) {
            self.report_users();
        }
    }

    /// A member of another node left: this node's members are told.
    fn remote_left(&mut self, peer: &SessionId, dropped: bool) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let before = cluster.remote.len();
        cluster.remote.retain(|m| &m.peer_id != peer);
        if cluster.remote.len() == before {
            return;
        }
        cluster.unlisted.remove(peer);
        let frame = ServerMsg::RoomPeerLeft {
            room: &self.name,
            peer_id: peer,
            dropped,
        }
        .encode();
        self.broadcast(&frame, None);
    }

    /// A chat message of this room (stored, so in the database), from this node or another:
    /// delivered if it is the next one, dropped if already delivered, else held while the
    /// missing ones are read from the database.
    fn offer_chat(&mut self, msg_id: i64, prev: i64, frame: ByteString, ctx: &mut Context<Self>) {
        let Some(cluster) = self.cluster.as_mut().filter(|c| c.room_id.is_some()) else {
            // One node, or a conversation (whose messages reach its members through presence,
            // so one here is one that could not), or a room whose chat position is not known
            // yet: it goes out as it comes.
            if let Some(cluster) = &mut self.cluster {
                cluster.delivered = cluster.delivered.max(msg_id);
            }
            return self.broadcast(&frame, None);
        };
        if msg_id <= cluster.delivered {
            return;
        }
        if cluster.fetching || prev > cluster.delivered {
            // A gap: the messages before this one are committed (this one's is), and most
            // often on their way here over Redis from another node. Wait briefly for them
            // before reading the database.
            cluster.waiting.insert(msg_id, (prev, frame));
            if !cluster.fetching && !cluster.gap_timer {
                cluster.gap_timer = true;
                ctx.run_later(GAP_WAIT, |act, ctx| {
                    let Some(cluster) = &mut act.cluster else {
                        return;
                    };
                    cluster.gap_timer = false;
                    if !cluster.waiting.is_empty() {
                        act.fetch(ctx);
                    }
                });
            }
            return;
        }
        cluster.delivered = msg_id;
        self.broadcast(&frame, None);
        // What waited for this one, in order, as long as each follows the last delivered.
        while let Some(cluster) = self.cluster.as_mut().filter(|c| !c.fetching) {
            let Some(entry) = cluster.waiting.first_entry() else {
                break;
            };
            let (next, prev) = (*entry.key(), entry.get().0);
            if next <= cluster.delivered {
                entry.remove();
                continue;
            }
            if prev > cluster.delivered {
                break;
            }
            let (_, frame) = entry.remove();
            cluster.delivered = next;
            self.broadcast(&frame, None);
        }
    }

    /// Reads the room's messages after `delivered` from the database and delivers them in
    /// order, then what waited for them. At most one read at a time.
    fn fetch(&mut self, ctx: &mut Context<Self>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let Some(room_id) = cluster.room_id else {
            return;
        };
        if cluster.fetching {
            return;
        }
        cluster.fetching = true;
        let after = cluster.delivered;
        // Every message waiting now is stored, and so is every earlier one of the room:
        // the read sees them all (one it does not see was deleted meanwhile).
        let covered = cluster.waiting.keys().next_back().copied().unwrap_or(0);
        let pool = cluster.link.pool.clone();
        let name = self.name.clone();
        let read = async move {
            db::run(&pool, move |conn| {
                Ok(room_page(
                    conn,
                    &name,
                    room_id,
                    Cursor::After(after),
                    db::messages::MAX_PAGE,
                )?)
            })
            .await
        };
        ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
            let more = match res {
                Ok((views, more)) => {
                    let mut caught_up = 0;
                    for view in &views {
                        let delivered = act.cluster.as_ref().map_or(i64::MAX, |c| c.delivered);
                        if view.msg_id > delivered {
                            let frame = ServerMsg::ChatMessage(view).encode();
                            act.broadcast(&frame, None);
                            if let Some(c) = &mut act.cluster {
                                c.delivered = view.msg_id;
                            }
                            caught_up += 1;
                        }
                    }
                    if let (Some(c), true) = (&act.cluster, caught_up > 0) {
                        c.link.metrics.chat_caught_up(caught_up);
                    }
                    more
                }
                Err(e) => {
                    // Tried again at the next repair.
                    log::warn!("room {}: cannot catch up its chat: {e}", act.name.as_str());
                    false
                }
            };
            let Some(cluster) = &mut act.cluster else {
                return;
            };
            cluster.fetching = false;
            if more {
                return act.fetch(ctx);
            }
            cluster.delivered = cluster.delivered.max(covered);
            let delivered = cluster.delivered;
            let waiting = std::mem::take(&mut cluster.waiting);
            for (msg_id, (prev, frame)) in waiting.range(delivered + 1..) {
                act.offer_chat(*msg_id, *prev, frame.clone(), ctx);
            }
        }));
    }
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
        // The members of other nodes: the roles follow the join times (`polite_towards`).
        let remote_peers = |room: &RoomActor, joined_at: i64| -> Vec<PeerView> {
            room.cluster
                .iter()
                .flat_map(|c| &c.remote)
                .map(|m| PeerView {
                    peer_id: m.peer_id.clone(),
                    user: m.user.clone(),
                    polite: polite_towards((m.joined_at, &m.peer_id), (joined_at, &msg.peer_id)),
                })
                .collect()
        };
        if let Some(me) = self.members.iter().find(|m| m.peer_id == msg.peer_id) {
            let mut peers = peers_for(&self.members, &msg.peer_id);
            peers.extend(remote_peers(self, me.joined_at));
            return Ok(peers);
        }
        if self.size() >= self.cap {
            return Err(ApiError::Conflict(format!(
                "room '{}' is full ({} members)",
                self.name.as_str(),
                self.cap
            )));
        }
        let joined_at = db::now_ms();
        let mut peers = peers_for(&self.members, &msg.peer_id);
        peers.extend(remote_peers(self, joined_at));
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
        if let Some(cluster) = &self.cluster {
            let entry = MemberEntry {
                user: msg.user.clone(),
                node: cluster.link.broker.node().clone(),
                at: joined_at,
                joined_at,
            };
            cluster
                .link
                .register(&self.name, vec![(msg.peer_id.clone(), entry)]);
            self.publish(&RoomEvent::Joined {
                peer: msg.peer_id.clone(),
                user: msg.user.clone(),
                joined_at,
            });
        }
        self.members.push(Member {
            peer_id: msg.peer_id,
            user: msg.user,
            deliver: msg.deliver,
            joined_at,
        });
        self.report_users();
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
        if let Some(cluster) = &self.cluster {
            cluster
                .link
                .unregister(&self.name, vec![msg.peer_id.clone()]);
            self.publish(&RoomEvent::Left {
                peer: msg.peer_id,
                dropped: msg.dropped,
            });
        }
        self.report_users();
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
        let remote = self.remote_node_of(&msg.to, &msg.from);
        let frame = || {
            ServerMsg::Signal {
                room: &self.name,
                from: &msg.from,
                kind: msg.kind,
                data: &msg.data,
            }
            .encode()
        };
        match (target, remote, &self.cluster) {
            (Some(target), _, _) => target.deliver.do_send(Deliver(frame())),
            (None, Some(node), Some(cluster)) => {
                // To the target's node only; in order with this node's room events, since
                // all of a node's publishes leave in one queue.
                let event = RoomEvent::Signal {
                    to: SessionId(msg.to.as_str().into()),
                    from: msg.from.clone(),
                    user: sender.user.clone(),
                    joined_at: sender.joined_at,
                    frame: frame().to_string(),
                };
                cluster.link.publish_to(node, &self.name, &event);
            }
            _ => sender.deliver.do_send(Deliver(error_frame(
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

impl RoomActor {
    /// The node of `peer` (not `from`) if it is a member on another node.
    fn remote_node_of(&self, peer: &str, from: &SessionId) -> Option<&NodeId> {
        if from.0.as_str() == peer {
            return None;
        }
        self.cluster
            .iter()
            .flat_map(|c| &c.remote)
            .find(|m| m.peer_id.0.as_str() == peer)
            .map(|m| &m.node)
    }
}

/// One stored chat message of a commit, ready to go out.
pub struct Committed {
    /// The sender's queue: gets the ack even if the sender has left the room meanwhile.
    pub sender: Delivery,
    pub ack: ByteString,
    /// `chat.message`, for every member; `None` for a retry (delivered the first time).
    pub message: Option<ByteString>,
    /// The message's id.
    pub msg_id: i64,
    /// The id of the room's message before it (with a broker; else unused): a node that
    /// has not delivered that one yet reads the missing ones first.
    pub prev: i64,
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
    fn handle(&mut self, mut msg: ChatStored, ctx: &mut Self::Context) {
        for committed in std::mem::take(&mut msg.0) {
            committed.sender.do_send(Deliver(committed.ack));
            let Some(frame) = committed.message else {
                continue;
            };
            let Some(cluster) = &self.cluster else {
                self.broadcast(&frame, None);
                continue;
            };
            // With no member elsewhere (that this node knows of), nothing to publish: a
            // node whose member joined meanwhile finds the message in the database (its
            // start reads where the chat stands, a later message's `prev` shows the gap,
            // and it looks every `RECONCILE`).
            if !cluster.remote.is_empty() {
                self.publish(&RoomEvent::Chat {
                    msg_id: committed.msg_id,
                    prev: committed.prev,
                    frame: frame.to_string(),
                });
            }
            self.offer_chat(committed.msg_id, committed.prev, frame, ctx);
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
        if self.cluster.as_ref().is_some_and(|c| !c.remote.is_empty()) {
            self.publish(&RoomEvent::Frame {
                frame: frame.to_string(),
            });
        }
    }
}

impl Handler<RemoteEvent> for RoomActor {
    type Result = ();

    /// What a member on another node did, for this node's members.
    fn handle(&mut self, msg: RemoteEvent, ctx: &mut Self::Context) {
        match msg.event {
            RoomEvent::Joined {
                peer,
                user,
                joined_at,
            } => self.heard_of(msg.from, peer, user, joined_at),
            RoomEvent::Left { peer, dropped } => {
                self.remote_left(&peer, dropped);
                self.report_users();
            }
            RoomEvent::Signal {
                to,
                from,
                user,
                joined_at,
                frame,
            } => {
                if !self.members.iter().any(|m| m.peer_id == to) {
                    return;
                }
                // A sender this node has not heard join (its `Joined` went out before this
                // node subscribed to the room's channel, and the hash was read before its
                // entry was written): a member all the same, so that the answer can go back.
                // Its peer-joined frame goes out before its signal.
                self.heard_of(msg.from, from, user, joined_at);
                if let Some(target) = self.members.iter().find(|m| m.peer_id == to) {
                    target.deliver.do_send(Deliver(ByteString::from(frame)));
                }
            }
            RoomEvent::Frame { frame } => self.broadcast(&ByteString::from(frame), None),
            RoomEvent::Chat {
                msg_id,
                prev,
                frame,
            } => self.offer_chat(msg_id, prev, ByteString::from(frame), ctx),
        }
    }
}

impl Handler<ClusterEvent> for RoomActor {
    type Result = ();

    /// A node gone: its members leave (as dropped: they may come back through another
    /// node). Redis back: this node's members are written again, and the rest repaired.
    fn handle(&mut self, msg: ClusterEvent, ctx: &mut Self::Context) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        match msg {
            ClusterEvent::NodeGone(node) => {
                let gone: Vec<SessionId> = cluster
                    .remote
                    .iter()
                    .filter(|m| m.node == node)
                    .map(|m| m.peer_id.clone())
                    .collect();
                cluster.link.unregister(&self.name, gone.clone());
                for peer in &gone {
                    self.remote_left(peer, true);
                }
                if !gone.is_empty() {
                    self.report_users();
                }
            }
            ClusterEvent::Resync => self.repair(ctx),
        }
    }
}
