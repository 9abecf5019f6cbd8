//! Presence across nodes (`--broker`): every node's users in every node's lobby.
//!
//! Each node owns one [`Record`] per user with sessions on it (how the user looks, whether
//! this node sees them in a call, how many sessions they have here). It keeps them in the
//! Redis hash `{prefix}:presence:{node}` (field: user id) and publishes every change on
//! [`Topic::Presence`] as [`News`], the changes of one presence tick together. Each write
//! carries the node's next *version* (also stored, with the hash, in `{prefix}:pver:{node}`,
//! by one script that applies a batch only onto the version it follows), as Centrifugo's
//! Redis engine keeps presence:
//!
//! - a receiver applies news whose version follows the last it applied; one that skips a
//!   version (pub/sub dropped something) makes it re-read that node's whole hash;
//! - every [`REPAIR_EVERY`] each node compares the stored versions of the live nodes with
//!   what it applied, and re-reads those that differ twice in a row (pub/sub is not trusted
//!   to deliver);
//! - a node that starts, finds Redis lost its keys ([`ClusterEvent::Resync`]), or could not
//!   write a batch onto the version before it, rewrites its whole hash and publishes it whole
//!   (`reset`); receivers replace what they had of it (a hash is never left with only part
//!   of a node's users);
//! - a node that is gone ([`ClusterEvent::NodeGone`]: killed, cut off) takes its records
//!   with it on every node at once; its hash expires in Redis after [`KEYS_TTL`].
//!
//! Versions start at the node's start time in milliseconds, so a node that restarts under
//! the same id is never taken for its old self. The presence actor merges the records into
//! its users ([`super::OnlineUser::remote`]): a user is online while they have a session
//! here or a record of another node; they are `in_call` if any node sees them in one; their
//! chosen status is the latest chosen on any node.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{OnlineUser, PresenceActor};
use crate::{
    db::models::Capabilities,
    realtime::{
        broker::{Broker, ClusterEvent, Inbound, Kind, NodeId, Topic},
        protocol::{ChosenStatus, SharedStr, UserId},
    },
};

/// How often a node checks the other nodes' stored versions against what it applied, and
/// refreshes the expiry of its own keys.
pub(super) const REPAIR_EVERY: Duration = Duration::from_secs(2);
/// How long a node's presence keys outlive its last refresh (a killed node's records are
/// dropped at once by the others; this only clears Redis).
const KEYS_TTL: Duration = Duration::from_secs(30);
/// How many repair rounds in a row a node's stored version may differ from the one applied
/// before its hash is re-read (one round may just see news still on its way).
const REPAIR_PATIENCE: u8 = 2;

/// How one node sees one of its users (the value of their field in the node's hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Their nickname, capabilities and themes, as in the lobby.
    pub nickname: SharedStr,
    pub capabilities: Capabilities,
    pub themes: Vec<String>,
    /// The status the user chose, and when (ms since the epoch; 0: never chose): the
    /// latest chosen on any node wins.
    pub chosen: ChosenStatus,
    pub chosen_at: i64,
    /// When the profile above was set (ms; 0: as registered): the latest wins.
    #[serde(default)]
    pub profile_at: i64,
    /// This node has them in a call.
    pub in_call: bool,
    /// Their sessions on this node.
    pub sessions: u32,
}

impl Record {
    /// `user`'s record as this node owns it.
    pub(super) fn of(user: &OnlineUser) -> Record {
        Record {
            nickname: user.nickname.clone(),
            capabilities: user.capabilities,
            themes: user.themes.to_vec(),
            chosen: user.chosen,
            chosen_at: user.elsewhere.as_ref().map_or(0, |e| e.chosen_at),
            profile_at: user.elsewhere.as_ref().map_or(0, |e| e.profile_at),
            in_call: user.in_calls > 0,
            sessions: u32::try_from(user.sessions.len()).unwrap_or(u32::MAX),
        }
    }
}

/// A user's part in the cluster, kept in their [`OnlineUser`] (with `--broker` only).
#[derive(Debug, Default)]
pub(super) struct Elsewhere {
    /// When the user chose their status (ms since the epoch; 0: they did not): the latest
    /// chosen on any node wins.
    pub chosen_at: i64,
    /// When their nickname, capabilities or themes last changed (ms; 0: not since they
    /// came online): the latest change wins.
    pub profile_at: i64,
    /// What other nodes hold of them.
    pub remote: Vec<RemoteEntry>,
}

/// What a user has on another node, kept in their [`OnlineUser`].
#[derive(Debug, Clone)]
pub(super) struct RemoteEntry {
    /// The node.
    pub node: NodeId,
    /// That node has them in a call.
    pub in_call: bool,
    /// Their sessions on that node.
    pub sessions: u32,
}

/// What nodes tell each other of presence ([`Kind::Presence`] on [`Topic::Presence`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum PresenceMsg {
    /// Changes of the sending node's records.
    News(News),
    /// A user's profile changed (the node that changed it tells every node).
    Profile(Profile),
}

/// A user's new nickname, capabilities and themes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// Whose profile.
    pub user: UserId,
    /// The new profile.
    pub nickname: SharedStr,
    pub capabilities: Capabilities,
    pub themes: Vec<String>,
    /// When it changed (ms): an older profile never replaces a newer one.
    pub at: i64,
}

/// One node's presence changes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct News {
    /// The node's version after these changes.
    pub version: u64,
    /// `changes` is everything the node has: whatever else a receiver had of it is gone.
    #[serde(default)]
    pub reset: bool,
    /// Each changed user's record, or `None`: no longer on that node.
    pub changes: Vec<(UserId, Option<Record>)>,
}

/// A batch of this node's changes for the writer task.
struct Write {
    version: u64,
    reset: bool,
    changes: Vec<(UserId, Option<Record>)>,
}

/// What this node knows of another node's presence.
#[derive(Default)]
struct Peer {
    /// The version whose state is applied here.
    applied: u64,
    /// The highest version heard of (news ignored during a read included).
    seen: u64,
    /// A read of the node's hash is under way (this token: a later one supersedes it).
    reading: Option<u64>,
    /// Repair rounds in a row that found the stored version different from `applied`.
    suspect: u8,
    /// Repair rounds in a row that did not find the node alive.
    unlisted: u8,
    /// The users it holds.
    users: HashSet<UserId>,
}

/// The presence actor's cluster state (present only with `--broker`).
pub(super) struct Cluster {
    pub broker: Broker,
    /// This node's last version.
    version: u64,
    /// Own users whose record changed since the last tick.
    pub own_dirty: HashSet<UserId>,
    /// The whole hash must be written again (start, Redis back, a failed write).
    reset_needed: bool,
    writes: mpsc::UnboundedSender<Write>,
    writes_rx: Option<mpsc::UnboundedReceiver<Write>>,
    peers: HashMap<NodeId, Peer>,
    /// The last read token handed out.
    reads: u64,
    /// Where the per-user cap learns of the users' connections on other nodes.
    pub connections: Option<std::sync::Arc<crate::realtime::ConnectionCounts>>,
}

impl Cluster {
    /// The cluster state of a node linked by `broker`.
    pub fn new(broker: Broker) -> Self {
        let (writes, writes_rx) = mpsc::unbounded_channel();
        Cluster {
            broker,
            version: u64::try_from(crate::db::now_ms()).unwrap_or_default(),
            own_dirty: HashSet::new(),
            reset_needed: true,
            writes,
            writes_rx: Some(writes_rx),
            peers: HashMap::new(),
            reads: 0,
            connections: None,
        }
    }

    fn hash(&self, node: &NodeId) -> String {
        self.broker.key(&format!("presence:{node}"))
    }

    fn version_key(&self, node: &NodeId) -> String {
        self.broker.key(&format!("pver:{node}"))
    }
}

/// Hands [`Kind::Presence`] messages from other nodes to the presence actor (whose own
/// [`Inbound`] handler takes [`Kind::Session`] ones).
pub struct PresenceFeed {
    /// The presence actor.
    pub presence: Addr<PresenceActor>,
}

impl Actor for PresenceFeed {
    type Context = Context<Self>;
}

impl Handler<Inbound> for PresenceFeed {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _: &mut Self::Context) {
        match msg.parse::<PresenceMsg>() {
            Some(PresenceMsg::News(news)) => self.presence.do_send(RemotePresence {
                from: msg.from,
                news,
            }),
            Some(PresenceMsg::Profile(profile)) => self.presence.do_send(profile),
            None => {}
        }
    }
}

impl Message for Profile {
    type Result = ();
}

/// A profile changed on another node.
impl Handler<Profile> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: Profile, ctx: &mut Self::Context) {
        self.change_profile(
            msg.user,
            msg.nickname,
            msg.capabilities,
            msg.themes.into(),
            msg.at,
        );
        self.ensure_ticking(ctx);
    }
}

/// Another node's presence changes, parsed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RemotePresence {
    /// The node whose changes they are.
    pub from: NodeId,
    pub news: News,
}

/// The writer task could not write this node's records: write them all again once Redis
/// answers.
#[derive(Message)]
#[rtype(result = "()")]
struct OwnWriteFailed;

impl Handler<OwnWriteFailed> for PresenceActor {
    type Result = ();

    fn handle(&mut self, _: OwnWriteFailed, ctx: &mut Self::Context) {
        if let Some(cluster) = &mut self.cluster {
            cluster.reset_needed = true;
        }
        self.ensure_ticking(ctx);
    }
}

impl Handler<RemotePresence> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: RemotePresence, ctx: &mut Self::Context) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let News {
            version,
            reset,
            changes,
        } = msg.news;
        let peer = cluster.peers.entry(msg.from.clone()).or_default();
        peer.seen = peer.seen.max(version);
        if reset {
            peer.reading = None;
            self.replace(&msg.from, version, changes);
        } else if peer.reading.is_some() || version <= peer.applied {
            // A read under way covers it (or re-reads after); or old news.
        } else if version == peer.applied + 1 {
            peer.applied = version;
            for (user, record) in changes {
                self.apply(&msg.from, user, record);
            }
        } else {
            self.read_node(msg.from, ctx);
        }
        self.ensure_ticking(ctx);
    }
}

impl Handler<ClusterEvent> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: ClusterEvent, ctx: &mut Self::Context) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        match msg {
            ClusterEvent::NodeGone(node) => self.forget_node(&node),
            ClusterEvent::Resync => {
                cluster.reset_needed = true;
                self.publish_own();
                let peers = self.cluster.as_ref().map(|c| c.broker.peers());
                for node in peers.into_iter().flatten() {
                    self.read_node(node, ctx);
                }
            }
        }
        self.ensure_ticking(ctx);
    }
}

impl PresenceActor {
    /// With a broker: starts the writer task and the repair round, and writes this node's
    /// (empty) hash, so that a node restarting under the same id drops its old records.
    pub(super) fn start_cluster(&mut self, ctx: &mut Context<Self>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if let Some(rx) = cluster.writes_rx.take() {
            actix_rt::spawn(write_loop(
                cluster.broker.clone(),
                rx,
                ctx.address().recipient(),
            ));
        }
        self.publish_own();
        self.repair(ctx);
        ctx.run_interval(REPAIR_EVERY, |act, ctx| act.repair(ctx));
    }

    /// Sends this node's changed records to the writer (all of them after a reset). Called
    /// on every push tick.
    pub(super) fn publish_own(&mut self) {
        let users = &self.users;
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let (reset, changes) = if cluster.reset_needed {
            if !cluster.broker.is_up() {
                return;
            }
            cluster.reset_needed = false;
            cluster.own_dirty.clear();
            let all = users
                .iter()
                .filter(|(_, u)| !u.sessions.is_empty())
                .map(|(id, u)| (*id, Some(Record::of(u))))
                .collect();
            (true, all)
        } else if cluster.own_dirty.is_empty() {
            return;
        } else {
            let changes = cluster
                .own_dirty
                .drain()
                .map(|id| {
                    let record = users
                        .get(&id)
                        .filter(|u| !u.sessions.is_empty())
                        .map(Record::of);
                    (id, record)
                })
                .collect();
            (false, changes)
        };
        cluster.version += 1;
        let _ = cluster.writes.send(Write {
            version: cluster.version,
            reset,
            changes,
        });
    }

    /// Marks `user_id`'s own record changed (published on the next tick).
    pub(super) fn own_changed(&mut self, user_id: UserId) {
        if let Some(cluster) = &mut self.cluster {
            cluster.own_dirty.insert(user_id);
        }
    }

    /// Replaces all that is known of `node` by `records` (its state at `version`).
    fn replace(&mut self, node: &NodeId, version: u64, records: Vec<(UserId, Option<Record>)>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let peer = cluster.peers.entry(node.clone()).or_default();
        let now: HashSet<UserId> = records
            .iter()
            .filter(|(_, r)| r.is_some())
            .map(|(id, _)| *id)
            .collect();
        let gone: Vec<UserId> = peer.users.difference(&now).copied().collect();
        peer.applied = version;
        peer.suspect = 0;
        for user in gone {
            self.apply(node, user, None);
        }
        for (user, record) in records {
            if record.is_some() {
                self.apply(node, user, record);
            }
        }
    }

    /// One of `node`'s records changed: noted for the node, then merged into the user.
    fn apply(&mut self, node: &NodeId, user_id: UserId, record: Option<Record>) {
        if let Some(peer) = self.cluster.as_mut().and_then(|c| c.peers.get_mut(node)) {
            if record.is_some() {
                peer.users.insert(user_id);
            } else {
                peer.users.remove(&user_id);
            }
        }
        self.merge(node, user_id, record);
    }

    /// Merges `node`'s record of `user_id` (`None`: they left that node) into the user as
    /// this node shows them, and their connections elsewhere into the per-user cap.
    fn merge(&mut self, node: &NodeId, user_id: UserId, record: Option<Record>) {
        self.merge_record(node, user_id, record);
        if let Some(counts) = self.cluster.as_ref().and_then(|c| c.connections.as_ref()) {
            let elsewhere = self.users.get(&user_id).map_or(0, Self::remote_sessions);
            counts.set_elsewhere(user_id, elsewhere);
        }
    }

    fn merge_record(&mut self, node: &NodeId, user_id: UserId, record: Option<Record>) {
        let Some(record) = record else {
            let Some(user) = self.users.get_mut(&user_id) else {
                return;
            };
            let Some(at) = user.remote().iter().position(|r| &r.node == node) else {
                return;
            };
            let before = user.status();
            user.elsewhere_mut().remote.swap_remove(at);
            if user.sessions.is_empty() && user.remote().is_empty() {
                self.went_offline(user_id);
            } else {
                // Not in a call any more if only that node said so.
                self.change_user(user_id, |user| user.status() != before);
            }
            return;
        };
        let entry = RemoteEntry {
            node: node.clone(),
            in_call: record.in_call,
            sessions: record.sessions,
        };
        if !self.users.contains_key(&user_id) {
            let in_calls = self.calls_holding(user_id);
            self.users.insert(
                user_id,
                OnlineUser {
                    sort_name: SharedStr::from(record.nickname.to_lowercase()),
                    nickname: record.nickname,
                    capabilities: record.capabilities,
                    themes: record.themes.into(),
                    chosen: record.chosen,
                    in_calls,
                    sessions: Vec::new(),
                    elsewhere: Some(Box::new(Elsewhere {
                        chosen_at: record.chosen_at,
                        profile_at: record.profile_at,
                        remote: vec![entry],
                    })),
                    fragment: None,
                },
            );
            self.came_online(user_id);
            return;
        }
        self.change_user(user_id, |user| {
            let before = user.view(user_id);
            let elsewhere = user.elsewhere_mut();
            match elsewhere.remote.iter_mut().find(|r| &r.node == node) {
                Some(known) => *known = entry,
                None => elsewhere.remote.push(entry),
            }
            let chosen_later = record.chosen_at > elsewhere.chosen_at;
            if chosen_later {
                elsewhere.chosen_at = record.chosen_at;
            }
            // A later profile than this node knows (its change was told to every node,
            // but that message may have been lost).
            let profile_later = record.profile_at > elsewhere.profile_at;
            if profile_later {
                elsewhere.profile_at = record.profile_at;
            }
            if chosen_later {
                user.chosen = record.chosen;
            }
            if profile_later {
                user.sort_name = SharedStr::from(record.nickname.to_lowercase());
                user.nickname = record.nickname;
                user.capabilities = record.capabilities;
                user.themes = record.themes.into();
            }
            let after = user.view(user_id);
            before.status != after.status
                || before.nickname != after.nickname
                || before.capabilities != after.capabilities
                || *before.themes != *after.themes
        });
    }

    /// `node` is gone: everything it held goes (its users offline where it was their last
    /// node).
    fn forget_node(&mut self, node: &NodeId) {
        let Some(peer) = self.cluster.as_mut().and_then(|c| c.peers.remove(node)) else {
            return;
        };
        log::info!(
            "presence: node {node} is gone with {} user(s)",
            peer.users.len()
        );
        for user in peer.users {
            self.merge(node, user, None);
        }
    }

    /// Reads `node`'s whole hash and version, and replaces what is known of it by them.
    fn read_node(&mut self, node: NodeId, ctx: &mut Context<Self>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.reads += 1;
        let token = cluster.reads;
        cluster.peers.entry(node.clone()).or_default().reading = Some(token);
        let (hash, version_key) = (cluster.hash(&node), cluster.version_key(&node));
        let mut redis = cluster.broker.redis();
        let read = async move {
            redis::pipe()
                .atomic()
                .hgetall(hash)
                .get(version_key)
                .query_async::<(HashMap<String, String>, Option<u64>)>(&mut redis)
                .await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            let Some(peer) = act.cluster.as_mut().and_then(|c| c.peers.get_mut(&node)) else {
                // Gone meanwhile.
                return;
            };
            if peer.reading != Some(token) {
                return;
            }
            peer.reading = None;
            let (fields, version) = match result {
                Ok((fields, Some(version))) => (fields, version),
                // Not (yet) registered again after a Redis restart: its reset will come.
                Ok((_, None)) => return,
                Err(e) => {
                    log::debug!("presence: cannot read node {node}: {e}");
                    return;
                }
            };
            let seen = peer.seen;
            let records = fields
                .into_iter()
                .filter_map(|(field, value)| {
                    let user = UserId(field.parse().ok()?);
                    let record = serde_json::from_str::<Record>(&value)
                        .map_err(|e| log::warn!("presence: unreadable record of {node}: {e}"))
                        .ok()?;
                    Some((user, Some(record)))
                })
                .collect();
            act.replace(&node, version, records);
            if seen > version {
                // News came and was set aside during the read: read once more.
                act.read_node(node, ctx);
            }
            act.ensure_ticking(ctx);
        }));
    }

    /// One repair round: reads the live nodes' stored versions (refreshing the expiry of
    /// this node's own keys), and re-reads the nodes this one is behind or unsure of.
    fn repair(&mut self, ctx: &mut Context<Self>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let peers = cluster.broker.peers();
        let keys: Vec<String> = peers.iter().map(|n| cluster.version_key(n)).collect();
        let me = cluster.broker.node().clone();
        let ttl = u64::try_from(KEYS_TTL.as_millis()).unwrap_or(u64::MAX);
        let (own_hash, own_version) = (cluster.hash(&me), cluster.version_key(&me));
        let mut redis = cluster.broker.redis();
        let round = async move {
            let mut pipe = redis::pipe();
            pipe.pexpire(own_hash, ttl as i64)
                .ignore()
                .pexpire(own_version, ttl as i64)
                .ignore();
            if keys.is_empty() {
                pipe.query_async::<()>(&mut redis).await?;
                return Ok(Vec::new());
            }
            pipe.cmd("MGET").arg(&keys);
            let (versions,): (Vec<Option<u64>>,) = pipe.query_async(&mut redis).await?;
            Ok::<_, redis::RedisError>(versions)
        };
        ctx.spawn(round.into_actor(self).map(move |result, act, ctx| {
            let Ok(versions) = result else {
                return;
            };
            let mut behind = Vec::new();
            let Some(cluster) = &mut act.cluster else {
                return;
            };
            // A node known here but no longer alive (news or a read that came after it was
            // declared gone, or a missed NodeGone) is forgotten once it stays unlisted for
            // longer than a new node takes to be listed.
            let mut unlisted = Vec::new();
            for (node, peer) in &mut cluster.peers {
                if peers.contains(node) {
                    peer.unlisted = 0;
                } else {
                    peer.unlisted += 1;
                    if peer.unlisted > REPAIR_PATIENCE {
                        unlisted.push(node.clone());
                    }
                }
            }
            for (node, stored) in peers.into_iter().zip(versions) {
                let Some(stored) = stored else {
                    // Not registered (yet): its reset brings it.
                    continue;
                };
                match cluster.peers.get_mut(&node) {
                    // A live node never heard of: read it now.
                    None => behind.push(node),
                    Some(peer) if peer.reading.is_some() => {}
                    Some(peer) if stored == peer.applied => peer.suspect = 0,
                    Some(peer) => {
                        peer.suspect += 1;
                        if peer.suspect >= REPAIR_PATIENCE {
                            peer.suspect = 0;
                            behind.push(node);
                        }
                    }
                }
            }
            for node in unlisted {
                act.forget_node(&node);
            }
            for node in behind {
                act.read_node(node, ctx);
            }
        }));
    }

    /// How many sessions `user` has on other nodes (as their records say).
    pub(super) fn remote_sessions(user: &OnlineUser) -> usize {
        user.remote().iter().map(|r| r.sessions as usize).sum()
    }

    /// Passes `frame` to `user`'s sessions on other nodes but `except`; answers how many
    /// sessions they have there.
    pub(super) fn send_to_remote(
        &self,
        user_id: UserId,
        frame: &str,
        except: Option<&crate::realtime::protocol::SessionId>,
    ) -> usize {
        let (Some(cluster), Some(user)) = (&self.cluster, self.users.get(&user_id)) else {
            return 0;
        };
        for remote in user.remote() {
            cluster.broker.publish(
                &Topic::Node(remote.node.clone()),
                Kind::Session,
                &crate::realtime::SessionMsg::ToUser {
                    user: user_id,
                    frame: frame.to_owned(),
                    except: except.cloned(),
                },
            );
        }
        Self::remote_sessions(user)
    }
}

/// Writes one batch of a node's records, atomically (a script runs alone in Redis): a batch
/// of changes only onto the version it follows (answers 0 otherwise: Redis restarted empty,
/// or a batch before was lost, and the whole hash must be written again, rather than a
/// part of it that others would read as the whole); a reset whatever was there.
///
/// KEYS: the hash, the version key. ARGV: reset (`1`/`0`), the version it follows, the new
/// version, the keys' expiry (ms), how many records are set, then field and value of each,
/// then the fields to delete.
const WRITE_SCRIPT: &str = r"
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
elseif redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[6 + 2 * i], ARGV[7 + 2 * i])
end
for i = 6 + 2 * n, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
";

/// Writes this node's batches in order (see [`WRITE_SCRIPT`]), publishing each once
/// written; after a failure, drops what is queued and asks for a full rewrite.
async fn write_loop(
    broker: Broker,
    mut writes: mpsc::UnboundedReceiver<Write>,
    failed: Recipient<OwnWriteFailed>,
) {
    let me = broker.node().clone();
    let hash = broker.key(&format!("presence:{me}"));
    let version_key = broker.key(&format!("pver:{me}"));
    let ttl = KEYS_TTL.as_millis().to_string();
    let mut redis = broker.redis();
    while let Some(write) = writes.recv().await {
        let mut set = Vec::new();
        let mut removed = Vec::new();
        for (user, record) in &write.changes {
            match record {
                Some(record) => set.push((
                    user.0.to_string(),
                    serde_json::to_string(record).unwrap_or_default(),
                )),
                None if !write.reset => removed.push(user.0.to_string()),
                None => {}
            }
        }
        let mut eval = redis::cmd("EVAL");
        eval.arg(WRITE_SCRIPT)
            .arg(2)
            .arg(&hash)
            .arg(&version_key)
            .arg(if write.reset { "1" } else { "0" })
            .arg(write.version.saturating_sub(1).to_string())
            .arg(write.version.to_string())
            .arg(&ttl)
            .arg(set.len());
        for (field, value) in &set {
            eval.arg(field).arg(value);
        }
        eval.arg(&removed);
        let written = match eval.query_async::<i64>(&mut redis).await {
            Ok(1) => true,
            Ok(_) => {
                log::info!("presence: this node's records in Redis are not as it left them; writing them all again");
                false
            }
            Err(e) => {
                log::debug!("presence: cannot write this node's records: {e}");
                false
            }
        };
        if written {
            broker.publish(
                &Topic::Presence,
                Kind::Presence,
                &PresenceMsg::News(News {
                    version: write.version,
                    reset: write.reset,
                    changes: write.changes,
                }),
            );
        } else {
            while writes.try_recv().is_ok() {}
            failed.do_send(OwnWriteFailed);
        }
    }
}
