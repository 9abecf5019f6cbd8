//! [`Broker`]: several Tertulia nodes serving one community over Redis (`--broker
//! redis://…`).
//!
//! One Redis connection per node, through the `redis` crate's [`ConnectionManager`] (it
//! reconnects by itself; RESP3, so pub/sub messages arrive as pushes on the same connection
//! as commands, and its subscriptions are restored after a reconnect). Without `--broker`
//! there is no broker at all and nothing here runs: one process behaves as before.
//!
//! ## What goes over it
//!
//! - **Messages** between nodes, on four kinds of channel ([`Topic`]): `presence` and `all`
//!   (every node), `node:{id}` (one node: frames and closes for its sessions), `room:{name}`
//!   (the nodes with members in a live room). Every message is an [`Envelope`]: the sending
//!   node, a [`Kind`] that says which actor takes it, and a body only that actor parses.
//!   All publishes of one node go through one queue and one connection, so the order of one
//!   sender's messages is kept on every channel (a signaling stream is never reordered).
//! - **Node liveness**, as LiveKit's router keeps it: every node refreshes its key
//!   `{prefix}:alive:{node}` every [`HEARTBEAT`] with an expiry of [`NODE_TTL`] and lists
//!   itself in the sorted set `{prefix}:nodes`. A node whose key is gone (killed, cut off) is
//!   [`ClusterEvent::NodeGone`] on every node within about `NODE_TTL` + `HEARTBEAT`: each
//!   drops what that node owned (its users' presence, its room members).
//! - **Repair**: pub/sub is not trusted to deliver. After Redis comes back (a reconnect, or a
//!   restarted Redis that lost every key: our liveness key is found missing) every node is
//!   told [`ClusterEvent::Resync`]: it re-registers what it owns and re-reads what others own,
//!   and chat catches up from the database.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use actix::prelude::*;
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    PushInfo, PushKind, Value,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::protocol::{RoomName, SharedStr};

/// How often a node refreshes its liveness key and looks at the others'.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a node's liveness key lives without a refresh: a node silent this long is gone.
pub const NODE_TTL: Duration = Duration::from_secs(5);
/// Most queued operations written to Redis in one pipeline.
const PIPELINE_MAX: usize = 256;

/// A node's name in the cluster (`--node-id`, or random).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub SharedStr);

impl NodeId {
    /// A fresh random id (`n-` and 10 base-32 digits).
    pub fn random() -> Self {
        let session = super::protocol::SessionId::random();
        // A session id is `s-` + 13 random digits; ten of them name a node.
        let digits: String = session.0.as_str().chars().skip(2).take(10).collect();
        NodeId(SharedStr::from(format!("n-{digits}")))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Where a message goes: one Redis channel each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Presence of every node's users (every node listens).
    Presence,
    /// Everything for one node's sessions.
    Node(NodeId),
    /// A live room's members on every node that has some.
    Room(RoomName),
    /// Every node (revocations, drains).
    All,
}

/// Which actor takes a message (it alone parses the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Presence records (the presence actor).
    Presence,
    /// Frames and closes for sessions of the receiving node (the presence actor, which
    /// knows them).
    Session,
    /// A live room's events (the hub hands them to the room).
    Room,
    /// The call lifecycle (the hub).
    Call,
    /// Frames a client posted to another node for its event stream on this one (the HTTP
    /// transport behind a balancer: [`super::stream::StreamRelay`]).
    Stream,
    /// The answer to a [`Broker::request`] (taken by the broker itself).
    Reply,
}

/// What crosses the broker: who sent it, for whom, and a body for that actor.
#[derive(Serialize)]
struct Envelope<'a, B: Serialize> {
    from: &'a NodeId,
    kind: Kind,
    /// A request's number (its answer carries it back), if one is expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    req: Option<u64>,
    body: &'a B,
}

/// An envelope as received (the body left unparsed).
#[derive(Deserialize)]
struct Received {
    from: NodeId,
    kind: Kind,
    #[serde(default)]
    req: Option<u64>,
    body: Box<RawValue>,
}

/// A message from another node for the actor registered for its [`Kind`].
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The node that published it.
    pub from: NodeId,
    /// Set when the sender waits for an answer ([`Broker::reply`] with it).
    pub request: Option<u64>,
    /// Its body, for the receiving actor to parse.
    pub body: Box<RawValue>,
}

impl Inbound {
    /// The body as `T`, or `None` (logged) when another version of Tertulia sent something
    /// this one does not understand.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        serde_json::from_str(self.body.get())
            .map_err(|e| log::warn!("broker: unreadable message from {}: {e}", self.from))
            .ok()
    }
}

/// What happens to the cluster, for the actors that keep state about other nodes.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ClusterEvent {
    /// A node is gone (its liveness key expired, or it left): drop what it owned.
    NodeGone(NodeId),
    /// Redis is back (after a reconnect, or a restart that lost its keys): register again
    /// what this node owns, read again what the others own, catch up what pub/sub dropped.
    Resync,
}

/// Reads a node's live counts: WebSocket connections, live rooms, live calls.
pub type Gauges = Box<dyn Fn() -> (i64, i64, i64) + Send + Sync>;

/// One queued operation on the publishing connection, run in order.
enum Op {
    Publish { channel: String, payload: Vec<u8> },
    Subscribe(String),
    Unsubscribe(String),
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the broker URL is not a redis:// URL: {0}")]
    Url(String),
    #[error("Redis at {url} does not answer ({cause}); start it, or run without --broker")]
    Unreachable { url: String, cause: String },
    #[error(
        "another node is running as '{0}' (its liveness key is being refreshed); give this one \
         another --node-id"
    )]
    NodeIdInUse(NodeId),
}

/// A node's link to the others (cheap to clone). See the module documentation.
#[derive(Clone)]
pub struct Broker(Arc<Inner>);

struct Inner {
    node: NodeId,
    prefix: String,
    redis: ConnectionManager,
    ops: mpsc::UnboundedSender<Op>,
    up: AtomicBool,
    /// The first heartbeat has registered this node (later ones that find its key gone
    /// resync).
    registered: AtomicBool,
    routes: Mutex<HashMap<Kind, Recipient<Inbound>>>,
    watchers: Mutex<Vec<Recipient<ClusterEvent>>>,
    /// Channels this node wants to hear (restored after a reconnect).
    channels: Mutex<HashSet<String>>,
    /// The other nodes last seen alive.
    peers: Mutex<HashSet<NodeId>>,
    /// After Redis came back empty, no node is declared gone before this: every node needs a
    /// heartbeat to register again.
    settling_until: Mutex<Option<tokio::time::Instant>>,
    /// This node's live counts (connections, rooms, calls), shared at every heartbeat.
    gauges: Mutex<Option<Gauges>>,
    /// Requests waiting for their answer, by number.
    pending: Mutex<HashMap<u64, oneshot::Sender<Box<RawValue>>>>,
    next_request: AtomicU64,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("node", &self.0.node)
            .finish()
    }
}

impl Broker {
    /// Connects to Redis at `url` as `node` (keys and channels under `prefix`), and starts
    /// the publishing queue, the receiving loop and the heartbeat on the current runtime.
    pub async fn connect(url: &str, node: NodeId, prefix: &str) -> Result<Broker, BrokerError> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(BrokerError::Url(crate::db::redact_userinfo(url)));
        }
        // RESP3: pushes on the command connection (no second connection for pub/sub).
        let resp3 = if url.contains("protocol=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let unreachable = |e: redis::RedisError| BrokerError::Unreachable {
            url: crate::db::redact_userinfo(url),
            cause: e.to_string(),
        };
        let client =
            redis::Client::open(resp3.as_str()).map_err(|e| BrokerError::Url(e.to_string()))?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_millis(500));
        let mut redis = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unreachable)?;
        redis::cmd("PING")
            .query_async::<()>(&mut redis)
            .await
            .map_err(unreachable)?;
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let broker = Broker(Arc::new(Inner {
            node,
            prefix: prefix.to_owned(),
            redis,
            ops,
            up: AtomicBool::new(true),
            registered: AtomicBool::new(false),
            routes: Mutex::default(),
            watchers: Mutex::default(),
            channels: Mutex::default(),
            peers: Mutex::default(),
            settling_until: Mutex::default(),
            gauges: Mutex::default(),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
        }));
        broker.claim_node_id(url).await?;
        broker.subscribe(Topic::Node(broker.node().clone()));
        broker.subscribe(Topic::Presence);
        broker.subscribe(Topic::All);
        actix_rt::spawn(broker.clone().write_loop(ops_rx));
        actix_rt::spawn(broker.clone().read_loop(push_rx));
        broker.heartbeat().await;
        actix_rt::spawn(broker.clone().heartbeat_loop());
        log::info!(
            "node {} joined the cluster at {}",
            broker.node(),
            crate::db::redact_userinfo(url)
        );
        Ok(broker)
    }

    /// Takes this node's liveness key, waiting for it to expire if a node that ran under the
    /// same id just stopped (a restart within [`NODE_TTL`]); refuses an id another node
    /// keeps alive.
    async fn claim_node_id(&self, url: &str) -> Result<(), BrokerError> {
        let mut redis = self.redis();
        let alive = self.key(&format!("alive:{}", self.node()));
        let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
        let deadline = tokio::time::Instant::now() + NODE_TTL + HEARTBEAT;
        loop {
            let now = crate::db::now_ms();
            let claimed: Option<String> = redis::cmd("SET")
                .arg(&alive)
                .arg(now)
                .arg("PX")
                .arg(ttl)
                .arg("NX")
                .query_async(&mut redis)
                .await
                .map_err(|e| BrokerError::Unreachable {
                    url: crate::db::redact_userinfo(url),
                    cause: e.to_string(),
                })?;
            if claimed.is_some() {
                let _: redis::RedisResult<()> = redis::cmd("ZADD")
                    .arg(self.key("nodes"))
                    .arg(now)
                    .arg(self.node().0.as_str())
                    .query_async(&mut redis)
                    .await;
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::NodeIdInUse(self.node().clone()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.0.node
    }

    /// `name` under this cluster's prefix: every key and channel is named so.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.0.prefix)
    }

    /// A connection for commands on keys (it reconnects by itself; cheap to clone).
    pub fn redis(&self) -> ConnectionManager {
        self.0.redis.clone()
    }

    /// Whether Redis answered the last heartbeat (`/readyz` is 503 while it does not).
    pub fn is_up(&self) -> bool {
        self.0.up.load(Ordering::Relaxed)
    }

    /// The other nodes seen alive at the last heartbeat.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = lock(&self.0.peers).iter().cloned().collect();
        peers.sort();
        peers
    }

    fn channel(&self, topic: &Topic) -> String {
        match topic {
            Topic::Presence => self.key("presence"),
            Topic::Node(node) => self.key(&format!("node:{node}")),
            Topic::Room(room) => self.key(&format!("room:{}", room.0.as_str())),
            Topic::All => self.key("all"),
        }
    }

    /// Publishes `body` for the `kind` actor of every node listening on `topic` (this one
    /// too, if it listens). Never waits: queued, and written in order with this node's other
    /// publishes. A message published while Redis is down is lost; what depends on it is
    /// repaired on [`ClusterEvent::Resync`].
    pub fn publish(&self, topic: &Topic, kind: Kind, body: &impl Serialize) {
        self.send(topic, kind, None, body);
    }

    /// Asks `node` (its actor for `kind`) and waits up to `wait` for the answer; `None` when
    /// none came (the node is gone, or Redis is away). Only for a question one node must
    /// answer, never to ask every node.
    pub async fn request(
        &self,
        node: &NodeId,
        kind: Kind,
        body: &impl Serialize,
        wait: Duration,
    ) -> Option<Box<RawValue>> {
        let id = self.0.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.0.pending).insert(id, tx);
        self.send(&Topic::Node(node.clone()), kind, Some(id), body);
        let answer = tokio::time::timeout(wait, rx).await;
        lock(&self.0.pending).remove(&id);
        answer.ok()?.ok()
    }

    /// Answers request `request` of node `to` (see [`Broker::request`]).
    pub fn reply(&self, to: &NodeId, request: u64, body: &impl Serialize) {
        self.send(&Topic::Node(to.clone()), Kind::Reply, Some(request), body);
    }

    fn send(&self, topic: &Topic, kind: Kind, req: Option<u64>, body: &impl Serialize) {
        if !self.is_up() {
            // Not queued while Redis is away (the queue would only grow): dropped, and
            // repaired by the resync when it is back.
            return;
        }
        let envelope = Envelope {
            from: self.node(),
            kind,
            req,
            body,
        };
        match serde_json::to_vec(&envelope) {
            Ok(payload) => {
                let _ = self.0.ops.send(Op::Publish {
                    channel: self.channel(topic),
                    payload,
                });
            }
            Err(e) => log::error!("broker: cannot encode a {kind:?} message: {e}"),
        }
    }

    /// Starts listening on `topic` (in order with the publishes queued before).
    pub fn subscribe(&self, topic: Topic) {
        let channel = self.channel(&topic);
        if lock(&self.0.channels).insert(channel.clone()) {
            let _ = self.0.ops.send(Op::Subscribe(channel));
        }
    }

    /// Stops listening on `topic`.
    pub fn unsubscribe(&self, topic: Topic) {
        let channel = self.channel(&topic);
        if lock(&self.0.channels).remove(&channel) {
            let _ = self.0.ops.send(Op::Unsubscribe(channel));
        }
    }

    /// Where this node's live counts come from: shared with the others at every heartbeat
    /// (see [`Broker::cluster_gauges`]).
    pub fn share_gauges(&self, gauges: Gauges) {
        *lock(&self.0.gauges) = Some(gauges);
    }

    /// The live counts of every node alive, added up (connections, rooms, calls): each
    /// other node's as of its last heartbeat, this node's as they are now. A room with
    /// members on several nodes counts on one of them (the one whose id sorts first).
    pub async fn cluster_gauges(&self) -> (i64, i64, i64) {
        let mut total = lock(&self.0.gauges).as_ref().map_or((0, 0, 0), |g| g());
        let keys: Vec<String> = self
            .peers()
            .iter()
            .map(|n| self.key(&format!("gauges:{n}")))
            .collect();
        if keys.is_empty() {
            return total;
        }
        let mut redis = self.redis();
        let values: redis::RedisResult<Vec<Option<String>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut redis).await;
        for value in values.unwrap_or_default().into_iter().flatten() {
            let mut parts = value.split(',').map(|p| p.parse::<i64>().unwrap_or(0));
            total.0 += parts.next().unwrap_or(0);
            total.1 += parts.next().unwrap_or(0);
            total.2 += parts.next().unwrap_or(0);
        }
        total
    }

    /// Hands every message of `kind` from other nodes to `to`.
    pub fn route(&self, kind: Kind, to: Recipient<Inbound>) {
        lock(&self.0.routes).insert(kind, to);
    }

    /// Tells `to` of every [`ClusterEvent`].
    pub fn watch(&self, to: Recipient<ClusterEvent>) {
        lock(&self.0.watchers).push(to);
    }

    fn tell(&self, event: &ClusterEvent) {
        for watcher in lock(&self.0.watchers).iter() {
            watcher.do_send(event.clone());
        }
    }

    /// Leaves the cluster on purpose (server shutdown): the others drop this node at their
    /// next heartbeat rather than after [`NODE_TTL`].
    pub async fn leave(&self) {
        let mut redis = self.redis();
        let _: Result<(), _> = redis::pipe()
            .del(self.key(&format!("alive:{}", self.node())))
            .zrem(self.key("nodes"), self.node().0.as_str())
            .query_async(&mut redis)
            .await;
    }

    /// Writes the queued operations, in order: consecutive publishes in one pipeline.
    async fn write_loop(self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut redis = self.redis();
        let mut batch = Vec::with_capacity(PIPELINE_MAX);
        while ops.recv_many(&mut batch, PIPELINE_MAX).await > 0 {
            let mut pipe = redis::pipe();
            let mut queued = 0;
            for op in batch.drain(..) {
                match op {
                    Op::Publish { channel, payload } => {
                        pipe.publish(channel, payload).ignore();
                        queued += 1;
                    }
                    Op::Subscribe(channel) | Op::Unsubscribe(channel) if queued > 0 => {
                        // Everything published before goes out first.
                        if let Err(e) = pipe.query_async::<()>(&mut redis).await {
                            log::debug!("broker: publish failed: {e}");
                        }
                        pipe = redis::pipe();
                        queued = 0;
                        self.resubscribe_one(&mut redis, &channel).await;
                    }
                    Op::Subscribe(channel) | Op::Unsubscribe(channel) => {
                        self.resubscribe_one(&mut redis, &channel).await;
                    }
                }
            }
            if queued > 0 {
                if let Err(e) = pipe.query_async::<()>(&mut redis).await {
                    log::debug!("broker: publish failed: {e}");
                }
            }
        }
    }

    /// Brings one channel's subscription in line with what this node wants now.
    async fn resubscribe_one(&self, redis: &mut ConnectionManager, channel: &str) {
        let wanted = lock(&self.0.channels).contains(channel);
        let done = if wanted {
            redis.subscribe(channel).await
        } else {
            redis.unsubscribe(channel).await
        };
        if let Err(e) = done {
            // Restored with every other wanted channel on the next Resync.
            log::debug!("broker: (un)subscribe {channel} failed: {e}");
        }
    }

    /// Hands every message that arrives to the actor registered for its kind.
    async fn read_loop(self, mut pushes: mpsc::UnboundedReceiver<PushInfo>) {
        while let Some(push) = pushes.recv().await {
            match push.kind {
                PushKind::Message => {
                    if let Some(Value::BulkString(payload)) = push.data.get(1) {
                        self.dispatch(payload);
                    }
                }
                PushKind::Disconnection if self.0.up.swap(false, Ordering::Relaxed) => {
                    log::warn!("broker: lost the connection to Redis");
                }
                _ => {}
            }
        }
    }

    fn dispatch(&self, payload: &[u8]) {
        let received: Received = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("broker: unreadable message: {e}");
                return;
            }
        };
        if &received.from == self.node() {
            // This node's own message on a channel it also listens to: already handled here.
            return;
        }
        if received.kind == Kind::Reply {
            let waiting = received
                .req
                .and_then(|id| lock(&self.0.pending).remove(&id));
            if let Some(waiting) = waiting {
                let _ = waiting.send(received.body);
            }
            return;
        }
        let route = lock(&self.0.routes).get(&received.kind).cloned();
        match route {
            Some(to) => to.do_send(Inbound {
                from: received.from,
                request: received.req,
                body: received.body,
            }),
            None => log::debug!("broker: nobody takes {:?} messages", received.kind),
        }
    }

    async fn heartbeat_loop(self) {
        let mut every = tokio::time::interval(HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            self.heartbeat().await;
        }
    }

    /// One heartbeat: refreshes this node's liveness, finds the nodes that are gone, and
    /// after an outage or a Redis that lost its keys, restores the subscriptions and tells
    /// every watcher to resync.
    async fn heartbeat(&self) {
        let mut redis = self.redis();
        let alive = self.key(&format!("alive:{}", self.node()));
        let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
        let now = crate::db::now_ms();
        let mut beat = redis::pipe();
        beat.cmd("SET")
            .arg(&alive)
            .arg(now)
            .arg("PX")
            .arg(ttl)
            .arg("XX")
            .cmd("ZRANGE")
            .arg(self.key("nodes"))
            .arg(0)
            .arg(-1);
        // This node's live counts, for the others' admin stats, in the same round trip.
        if let Some((connections, rooms, calls)) = lock(&self.0.gauges).as_ref().map(|g| g()) {
            beat.cmd("SET")
                .arg(self.key(&format!("gauges:{}", self.node())))
                .arg(format!("{connections},{rooms},{calls}"))
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        let result: redis::RedisResult<(Option<String>, Vec<String>)> =
            beat.query_async(&mut redis).await;
        let (refreshed, listed) = match result {
            Ok(r) => r,
            Err(e) => {
                if self.0.up.swap(false, Ordering::Relaxed) {
                    log::warn!("broker: Redis does not answer: {e}");
                }
                return;
            }
        };
        let was_down = !self.0.up.swap(true, Ordering::Relaxed);
        let lost_keys = refreshed.is_none();
        if lost_keys {
            // First beat, expired after a long pause, or a Redis that restarted empty.
            let _: redis::RedisResult<()> = redis::pipe()
                .cmd("SET")
                .arg(&alive)
                .arg(now)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .zadd(self.key("nodes"), self.node().0.as_str(), now)
                .ignore()
                .query_async(&mut redis)
                .await;
        }
        let first = !self.0.registered.swap(true, Ordering::Relaxed);
        if !first && (was_down || lost_keys) {
            // The others register again at their next heartbeat: none is gone meanwhile.
            *lock(&self.0.settling_until) =
                Some(tokio::time::Instant::now() + NODE_TTL + HEARTBEAT);
            log::info!("broker: Redis is back; resynchronizing");
            let channels: Vec<String> = lock(&self.0.channels).iter().cloned().collect();
            for channel in channels {
                self.resubscribe_one(&mut redis, &channel).await;
            }
            self.tell(&ClusterEvent::Resync);
        }
        self.find_gone(&mut redis, listed).await;
    }

    /// Compares the listed nodes with their liveness keys: the listed whose key is gone are
    /// removed from the list; every node this one knew and no longer sees is gone.
    async fn find_gone(&self, redis: &mut ConnectionManager, listed: Vec<String>) {
        let others: Vec<NodeId> = listed
            .into_iter()
            .map(|n| NodeId(SharedStr::from(n)))
            .filter(|n| n != self.node())
            .collect();
        let mut alive = HashSet::new();
        if !others.is_empty() {
            let keys: Vec<String> = others
                .iter()
                .map(|n| self.key(&format!("alive:{n}")))
                .collect();
            let values: redis::RedisResult<Vec<Option<String>>> =
                redis::cmd("MGET").arg(&keys).query_async(redis).await;
            let Ok(values) = values else {
                return;
            };
            let mut dead = Vec::new();
            for (node, value) in others.into_iter().zip(values) {
                if value.is_some() {
                    alive.insert(node);
                } else {
                    dead.push(node);
                }
            }
            if !dead.is_empty() {
                let names: Vec<&str> = dead.iter().map(|n| n.0.as_str()).collect();
                let _: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg(self.key("nodes"))
                    .arg(&names)
                    .query_async(redis)
                    .await;
            }
        }
        let settling =
            lock(&self.0.settling_until).is_some_and(|until| tokio::time::Instant::now() < until);
        if settling {
            // Nodes not registered again yet are not gone: only add those that are back.
            lock(&self.0.peers).extend(alive);
            return;
        }
        let gone: Vec<NodeId> = {
            let mut peers = lock(&self.0.peers);
            let gone = peers.difference(&alive).cloned().collect();
            *peers = alive;
            gone
        };
        for node in gone {
            log::warn!("broker: node {node} is gone");
            self.tell(&ClusterEvent::NodeGone(node));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
