//! A live room whose members are on several nodes (`--broker`): what the room actors of
//! different nodes tell each other, and the [`RoomRouter`] that hands it to them.
//!
//! Each node runs its own [`RoomActor`] for a room while it has members there. Every such
//! actor listens on the room's channel ([`Topic::Room`]) and publishes there what its own
//! members do ([`RoomEvent`]): joins and leaves, typing, and the room's chat messages once
//! stored; a signal for a member elsewhere goes to that member's node alone (its
//! [`Topic::Node`] channel: in order with the rest, since all of a node's publishes leave
//! through one queue and one connection). The others apply them to their own members.
//!
//! Pub/sub is not trusted to deliver (a Redis restart, a reconnect, a subscription that was
//! not there yet lose messages), so neither membership nor chat depends on it alone:
//!
//! - **Members**: each node writes its own members (and only those) into the Redis hash
//!   `{prefix}:room:{name}:members` (peer id → user, node and when it was written), again
//!   every [`RECONCILE`] and on [`ClusterEvent::Resync`]; every room actor reads it when it
//!   starts, then at the same times, and drops the members of a node that is gone
//!   ([`ClusterEvent::NodeGone`]) and entries not written for [`STALE_MS`].
//! - **Chat**: every message carries the id of the room's message before it (`prev`), so a
//!   room actor that has delivered up to `delivered` sees a gap at once and reads the missing
//!   messages from the database, where every acknowledged message is; it also looks there
//!   after a resync and every [`RECONCILE`]. Members get every message once, in `msg_id`
//!   order.
//!
//! Without a broker none of this exists: no router, and room actors carry no [`RoomLink`].

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    broker::{Broker, ClusterEvent, Inbound, Kind, NodeId, Topic},
    metrics::RealtimeMetrics,
    protocol::{RoomName, SessionId, UserRef},
    room::RoomActor,
};
use crate::db::DbPool;

/// How often a room actor with members elsewhere re-reads the room's members from Redis
/// and looks in the database for chat messages pub/sub did not bring.
pub const RECONCILE: std::time::Duration = std::time::Duration::from_secs(3);

/// How soon after a room actor starts it reads the room's members and chat once more: what
/// the other nodes did while its subscription to the room's channel was being made.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// What a node's room actor tells the other nodes' actors of the same room.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomEvent {
    /// A session of the sending node entered the room (`joined_at`: when, by its node's
    /// clock: it decides the roles of the member and each peer, see [`polite_towards`]).
    Joined {
        peer: SessionId,
        user: UserRef,
        joined_at: i64,
    },
    /// A session of the sending node left it (`dropped`: its connection was lost).
    Left { peer: SessionId, dropped: bool },
    /// A frame (a `signal`) for the member `to` (sent on its node's channel only), from the
    /// member `from`, who `user` is and joined at `joined_at`: a node that has not heard it
    /// join yet (its join is on the room's channel, which the target's node may not have
    /// been subscribed to yet) learns it from its first signal, so the answer can go back.
    Signal {
        to: SessionId,
        from: SessionId,
        user: UserRef,
        joined_at: i64,
        frame: String,
    },
    /// A frame for every member (typing).
    Frame { frame: String },
    /// A stored chat message (`chat.message` frame) and the room's message before it.
    Chat {
        msg_id: i64,
        prev: i64,
        frame: String,
    },
}

/// A [`RoomEvent`] on the wire: for which room.
#[derive(Serialize)]
struct Outgoing<'a> {
    room: &'a RoomName,
    event: &'a RoomEvent,
}

/// A [`RoomEvent`] as received.
#[derive(Deserialize)]
struct Incoming {
    room: RoomName,
    event: RoomEvent,
}

/// A [`RoomEvent`] from another node, for this node's actor of that room.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RemoteEvent {
    /// The node whose member did it (a joiner's node, for its entry).
    pub from: NodeId,
    pub event: RoomEvent,
}

/// How old a member's entry in a room's hash may be before the others take it for a
/// leftover (its node writes it again every [`RECONCILE`]): a leave whose removal was lost
/// while Redis was away, or an entry that overtook it, does not outlive this. Nodes' clocks
/// are taken to agree within a few seconds (NTP).
pub const STALE_MS: i64 = 15_000;

/// A member's entry in the room's Redis hash (the field is its peer id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberEntry {
    /// Who the member is (as peers lists show them).
    pub user: UserRef,
    /// The node its connection is on (the only one that writes or removes the entry while
    /// alive).
    pub node: NodeId,
    /// When its node last wrote it (ms since the epoch).
    #[serde(default)]
    pub at: i64,
    /// When the member joined (ms since the epoch, by its node's clock; see
    /// [`polite_towards`]).
    #[serde(default)]
    pub joined_at: i64,
}

/// Whether a member who joined at `mine` is the polite one towards a peer on another node
/// who joined at `theirs` (each with its peer id, for a tie): the later one is, as the
/// newcomer is in one process. In one process the order of joins decides; across nodes
/// each side may hear of the other first (or only) from the room's Redis hash, so the roles
/// come from values both sides read alike — the two members' join times, each written by
/// its own node — and never depend on who heard first: exactly one of the two makes the
/// offer. Clocks that disagree only change which one.
pub fn polite_towards(theirs: (i64, &SessionId), mine: (i64, &SessionId)) -> bool {
    (theirs.0, theirs.1 .0.as_str()) < (mine.0, mine.1 .0.as_str())
}

/// What a room actor needs to reach the other nodes (cheap to clone).
#[derive(Clone)]
pub struct RoomLink {
    pub broker: Broker,
    /// Where a room actor says it started or stopped.
    pub router: Addr<RoomRouter>,
    /// For chat catch-up: the database holds every acknowledged message.
    pub pool: DbPool,
    /// Counts what the catch-up delivered.
    pub metrics: Arc<RealtimeMetrics>,
}

impl RoomLink {
    /// Publishes `event` for the other nodes' actors of `room`.
    pub fn publish(&self, room: &RoomName, event: &RoomEvent) {
        self.broker.publish(
            &Topic::Room(room.clone()),
            Kind::Room,
            &Outgoing { room, event },
        );
    }

    /// Publishes `event` for `room`'s actor on `node` only (on that node's channel).
    pub fn publish_to(&self, node: &NodeId, room: &RoomName, event: &RoomEvent) {
        self.broker.publish(
            &Topic::Node(node.clone()),
            Kind::Room,
            &Outgoing { room, event },
        );
    }

    /// The Redis hash of `room`'s members.
    pub fn members_key(&self, room: &RoomName) -> String {
        self.broker
            .key(&format!("room:{}:members", room.0.as_str()))
    }

    /// Writes this node's `entries` into `room`'s hash (in the background).
    pub fn register(&self, room: &RoomName, entries: Vec<(SessionId, MemberEntry)>) {
        // While Redis is away, nothing: the entries are written again once it is back.
        if entries.is_empty() || !self.broker.is_up() {
            return;
        }
        let key = self.members_key(room);
        let mut redis = self.broker.redis();
        actix::spawn(async move {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key);
            for (peer, entry) in &entries {
                let Ok(value) = serde_json::to_string(entry) else {
                    continue;
                };
                cmd.arg(peer.0.as_str()).arg(value);
            }
            if let Err(e) = cmd.query_async::<()>(&mut redis).await {
                log::debug!("room members: HSET {key} failed: {e}");
            }
        });
    }

    /// Removes `peers` from `room`'s hash (in the background).
    pub fn unregister(&self, room: &RoomName, peers: Vec<SessionId>) {
        // While Redis is away, nothing: an entry left behind goes stale (`STALE_MS`), and its
        // node removes it when it next reads the room's members.
        if peers.is_empty() || !self.broker.is_up() {
            return;
        }
        let key = self.members_key(room);
        let mut redis = self.broker.redis();
        actix::spawn(async move {
            let names: Vec<&str> = peers.iter().map(|p| p.0.as_str()).collect();
            let done = redis::cmd("HDEL")
                .arg(&key)
                .arg(&names)
                .query_async::<()>(&mut redis)
                .await;
            if let Err(e) = done {
                log::debug!("room members: HDEL {key} failed: {e}");
            }
        });
    }

    /// Reads `room`'s hash: every member on every node (entries that do not parse are
    /// skipped). `None`: Redis is away or did not answer (a room actor starting then does not
    /// wait for it).
    pub async fn members(broker: Broker, key: String) -> Option<Vec<(SessionId, MemberEntry)>> {
        if !broker.is_up() {
            return None;
        }
        let mut redis = broker.redis();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .map_err(|e| log::debug!("room members: HGETALL {key} failed: {e}"))
            .ok()?;
        Some(
            all.into_iter()
                .filter_map(|(peer, value)| {
                    let entry = serde_json::from_str::<MemberEntry>(&value).ok()?;
                    Some((SessionId(peer.into()), entry))
                })
                .collect(),
        )
    }
}

/// The node's live room actors (those it has, by name) as the other nodes' room events and
/// the cluster's events reach them; it also keeps the node subscribed to exactly the rooms
/// it has. One per node, only with a broker.
pub struct RoomRouter {
    broker: Broker,
    rooms: HashMap<RoomName, Addr<RoomActor>>,
}

impl RoomRouter {
    /// A router with no rooms yet.
    pub fn new(broker: Broker) -> Self {
        RoomRouter {
            broker,
            rooms: HashMap::new(),
        }
    }
}

impl Actor for RoomRouter {
    type Context = Context<Self>;
}

/// A room actor started on this node: its room's events now go to it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomUp {
    /// The room's name (its channel's).
    pub name: RoomName,
    pub addr: Addr<RoomActor>,
}

impl Handler<RoomUp> for RoomRouter {
    type Result = ();

    fn handle(&mut self, msg: RoomUp, _: &mut Self::Context) {
        if self.rooms.insert(msg.name.clone(), msg.addr).is_none() {
            self.broker.subscribe(Topic::Room(msg.name));
        }
    }
}

/// A room actor stopped (its last member of this node left).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomDown {
    /// The room's name (its channel's).
    pub name: RoomName,
    pub addr: Addr<RoomActor>,
}

impl Handler<RoomDown> for RoomRouter {
    type Result = ();

    fn handle(&mut self, msg: RoomDown, _: &mut Self::Context) {
        // A newer actor of the same room (started meanwhile) keeps the subscription.
        if self.rooms.get(&msg.name) == Some(&msg.addr) {
            self.rooms.remove(&msg.name);
            self.broker.unsubscribe(Topic::Room(msg.name));
        }
    }
}

/// Another node's room event ([`Kind::Room`]): to this node's actor of that room, if any.
impl Handler<Inbound> for RoomRouter {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _: &mut Self::Context) {
        let Some(incoming) = msg.parse::<Incoming>() else {
            return;
        };
        if let Some(room) = self.rooms.get(&incoming.room) {
            room.do_send(RemoteEvent {
                from: msg.from,
                event: incoming.event,
            });
        }
    }
}

/// A node gone or Redis back: every live room repairs what it knows.
impl Handler<ClusterEvent> for RoomRouter {
    type Result = ();

    fn handle(&mut self, msg: ClusterEvent, _: &mut Self::Context) {
        for room in self.rooms.values() {
            room.do_send(msg.clone());
        }
    }
}
