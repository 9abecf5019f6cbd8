//! The realtime core: WebSocket protocol v1 on `GET /ws` (`docs/protocol.md`).
//!
//! ## Actors and what each owns
//!
//! - [`session::SessionActor`], one per connection: its inbound stream, its bounded
//!   outbound queue, the rooms it joined, its rate limit.
//! - [`presence::PresenceActor`], one: every online user, their sessions and status; the
//!   lobby fan-out (diffs coalesced per tick, serialized once).
//! - [`room::RoomActor`], one per live room: its member sessions; signaling relay and chat
//!   fan-out.
//! - [`hub::Hub`], one: the registry of live rooms, and the driver of every live call: it
//!   runs the call lifecycle, [`calls::CallMachine`] (invitations, ring deadlines,
//!   participants, the reconnect grace: a pure state machine, no actor), and carries out
//!   what it answers (frames, timers, the call log).
//! - [`store::ChatStore`], one: chat writes with group commit.
//! - [`room_cluster::RoomRouter`], one per node with a broker (`--broker`): hands the other
//!   nodes' room events and the cluster's events to this node's live rooms; a room's members
//!   on other nodes and its chat order across nodes are in [`room_cluster`].
//!
//! Every connection's frames go through [`frames`] (limits, fragments, UTF-8, close codes)
//! and out through its session's [`outbox::Outbox`], whichever transport carries them: a
//! WebSocket, or the HTTP transport's event stream and posts ([`stream`]); the test-only
//! [`echo::EchoActor`] (`/ws-echo`) shares both, for the Autobahn|Testsuite. Who may enter a
//! room and its history pages are in [`history`].
//!
//! Room, hub, presence and the chat store reach a session only through its [`Delivery`] (in
//! [`SessionHandle`]): the one place where, with several nodes, a broker will deliver to
//! sessions elsewhere. Actors talk only by typed messages, so the same messages can later
//! cross nodes.

pub mod broker;
pub mod calls;
pub mod conversations;
pub mod echo;
pub mod frames;
pub mod history;
pub mod hub;
pub mod metrics;
pub mod outbox;
pub mod presence;
pub mod protocol;
pub mod room;
pub mod room_cluster;
pub mod session;
pub mod store;
pub mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actix::prelude::*;
use actix_ws::CloseCode;
use bytestring::ByteString;

use serde::{Deserialize, Serialize};

use self::{
    broker::{Broker, Kind, NodeId, Topic},
    hub::{Hub, Shutdown},
    metrics::RealtimeMetrics,
    presence::{CloseAll, CountSessions, Heartbeat, PresenceActor},
    protocol::{SessionId, SharedStr, UserId},
    room_cluster::{RoomLink, RoomRouter},
    store::ChatStore,
};
use crate::{
    config::Settings,
    db::DbPool,
    domain::Revoked,
    error::{ApiError, ErrorCode},
};

/// How long shutdown waits for sockets to close after sending them 1001.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// A frame (already serialized, shared) to write to one client, through its [`Delivery`].
pub(crate) struct Deliver(pub ByteString);

/// How every actor that fans frames out (room, hub, presence, chat store) reaches one
/// session: the one seam between them and the connections. A session of this process gets
/// its frames straight into its [`outbox::Outbox`], without a hop through the session's
/// mailbox; a session on another node (several nodes, `--broker`) through the broker, to
/// that node's presence actor, which hands them to the session's outbox there.
#[derive(Clone)]
pub struct Delivery(Target);

#[derive(Clone)]
enum Target {
    Local(outbox::Outbox),
    Remote(Arc<RemoteSession>),
}

/// A session on another node.
struct RemoteSession {
    broker: Broker,
    node: NodeId,
    user: UserId,
    session: SessionId,
}

impl Delivery {
    /// How to reach `session` of `user` on `node` (another node of the cluster).
    pub(crate) fn remote(broker: &Broker, node: NodeId, user: UserId, session: SessionId) -> Self {
        Delivery(Target::Remote(Arc::new(RemoteSession {
            broker: broker.clone(),
            node,
            user,
            session,
        })))
    }

    /// Queues `msg` for the session (dropped if it is closing or gone).
    pub(crate) fn do_send(&self, msg: Deliver) {
        match &self.0 {
            Target::Local(outbox) => outbox.do_send(msg),
            Target::Remote(remote) => remote.broker.publish(
                &Topic::Node(remote.node.clone()),
                Kind::Session,
                &SessionMsg::Frame {
                    user: remote.user,
                    session: remote.session.clone(),
                    frame: msg.0.to_string(),
                },
            ),
        }
    }

    /// Whether the session still takes frames (a remote one is taken to, until its node
    /// says it is gone).
    pub(crate) fn is_open(&self) -> bool {
        match &self.0 {
            Target::Local(outbox) => outbox.is_open(),
            Target::Remote(_) => true,
        }
    }

    /// The connection behind a session of this process (`None` on another node): its
    /// heartbeat (presence's sweep) is kept where the connection is.
    pub(crate) fn connection(&self) -> Option<&outbox::Outbox> {
        match &self.0 {
            Target::Local(outbox) => Some(outbox),
            Target::Remote(_) => None,
        }
    }

    /// The node a remote session is on (`None`: this one).
    pub(crate) fn node(&self) -> Option<&NodeId> {
        match &self.0 {
            Target::Local(_) => None,
            Target::Remote(remote) => Some(&remote.node),
        }
    }
}

impl From<outbox::Outbox> for Delivery {
    fn from(outbox: outbox::Outbox) -> Self {
        Delivery(Target::Local(outbox))
    }
}

/// What one node asks another about the sessions it holds ([`Kind::Session`] messages, taken
/// by the receiving node's presence actor).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum SessionMsg {
    /// A frame for one session (a remote [`Delivery`]).
    Frame {
        user: UserId,
        session: SessionId,
        frame: String,
    },
    /// A frame for every session of `user` on the receiving node but `except`.
    ToUser {
        user: UserId,
        frame: String,
        except: Option<SessionId>,
    },
    /// Some of a user's login sessions were revoked (published to every node): each closes
    /// the connections they opened with 4001.
    Revoke { user: UserId, which: Revoked },
}

/// Tells a session to close its connection with `code`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CloseSession {
    pub code: CloseCode,
    pub reason: &'static str,
    /// Frames already queued go out before the close frame (false: they are dropped, as for
    /// a client that stopped answering).
    pub flush: bool,
}

/// How other actors reach one session.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: SessionId,
    /// Frames for the session.
    pub deliver: Delivery,
    /// Weak, so that presence's entry for an idle session does not hold a sender of its
    /// mailbox (an allocation per connection); upgraded only to close it. A weak address
    /// rather than a weak recipient: one pointer, where a recipient boxes one.
    pub close: actix::WeakAddr<session::SessionActor>,
}

/// Open WebSocket connections per user, counted where upgrades are admitted (before the
/// handshake is answered), so the per-user cap holds even for upgrades that arrive at the
/// same instant, and admitting one costs no message to an actor.
#[derive(Default)]
pub struct ConnectionCounts {
    per_user: Mutex<HashMap<UserId, UserConnections>>,
}

/// One user's open connections.
#[derive(Default)]
struct UserConnections {
    open: usize,
    /// Their connections on other nodes (`--broker`), as those nodes' presence records say
    /// (kept by the presence actor): the cap is over every node. Two upgrades at the same
    /// instant on two nodes may both be admitted; the cap holds once the records crossed.
    elsewhere: usize,
    /// The nickname their sessions share (see [`ConnectionSlot::nickname`]).
    nickname: Option<SharedStr>,
}

impl ConnectionCounts {
    /// A slot for one more connection of `user`, or `None` when they already have `max`.
    pub fn admit(self: &Arc<Self>, user: UserId, max: usize) -> Option<ConnectionSlot> {
        let mut per_user = self.per_user.lock().unwrap_or_else(PoisonError::into_inner);
        if per_user.get(&user).map_or(0, |u| u.open + u.elsewhere) >= max {
            return None;
        }
        per_user.entry(user).or_default().open += 1;
        Some(ConnectionSlot {
            counts: Arc::clone(self),
            user,
        })
    }

    /// `user` has `count` connections on other nodes (several nodes, `--broker`).
    pub(crate) fn set_elsewhere(&self, user: UserId, count: usize) {
        let mut per_user = self.per_user.lock().unwrap_or_else(PoisonError::into_inner);
        if count == 0 {
            if let Some(known) = per_user.get_mut(&user) {
                known.elsewhere = 0;
                if known.open == 0 {
                    per_user.remove(&user);
                }
            }
        } else {
            per_user.entry(user).or_default().elsewhere = count;
        }
    }
}

/// One admitted connection; dropping it (when its session actor is gone) frees the slot.
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    user: UserId,
}

impl ConnectionSlot {
    /// `nickname` as a shared string, the same one for all of the user's connections while
    /// it stays the same (one string per user instead of one per connection).
    pub fn nickname(&self, nickname: &str) -> SharedStr {
        let mut per_user = self
            .counts
            .per_user
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let user = per_user.entry(self.user).or_default();
        match &user.nickname {
            Some(shared) if shared.as_str() == nickname => shared.clone(),
            _ => user.nickname.insert(SharedStr::from(nickname)).clone(),
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_user = self
            .counts
            .per_user
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(user) = per_user.get_mut(&self.user) {
            user.open -= 1;
            if user.open == 0 && user.elsewhere == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

/// The addresses of the realtime actors and what sessions share; cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    pub presence: Addr<PresenceActor>,
    pub hub: Addr<Hub>,
    pub store: Addr<ChatStore>,
    pub metrics: Arc<RealtimeMetrics>,
    /// Open connections per user (`--ws-max-conns-per-user`).
    pub connections: Arc<ConnectionCounts>,
    /// The open event streams of the HTTP transport, where their POSTs find them.
    pub streams: Arc<stream::Streams>,
    /// The link to the other nodes (`--broker`); `None`: this process serves alone.
    pub broker: Option<Broker>,
    /// Shutdown has begun: `/readyz` answers 503 (a balancer stops sending clients here) and
    /// new connections are refused, so clients told 1001 reconnect elsewhere.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// Users' `last_seen_at`, written behind (presence touches it; shutdown flushes it).
    last_seen: Arc<crate::db::Touches>,
    pub(crate) pool: DbPool,
    pub(crate) settings: Arc<Settings>,
}

impl Realtime {
    /// Starts the presence, hub and chat-store actors on the current arbiter; their series
    /// go into `registry` (`/metrics`). `unseen_missed`: the users the call log holds missed
    /// calls for that they were never told about (told on their next connection).
    pub fn start(
        pool: DbPool,
        settings: Arc<Settings>,
        registry: &crate::metrics::Metrics,
        unseen_missed: impl IntoIterator<Item = i64>,
        broker: Option<Broker>,
    ) -> Self {
        let metrics = Arc::new(RealtimeMetrics::new(registry));
        let connections: Arc<ConnectionCounts> = Arc::default();
        // Presence and hub know each other: create the hub's context first for its address.
        let hub_ctx = Context::<Hub>::new();
        let last_seen = crate::db::Touches::new(
            pool.clone(),
            "last_seen_at",
            crate::db::users::touch_last_seen,
        );
        let presence = PresenceActor::new(
            Duration::from_millis(settings.presence_tick_ms),
            settings.presence_frames_per_sec,
            Heartbeat::from_settings(&settings),
            Arc::clone(&metrics),
            hub_ctx.address(),
            broker.clone(),
            Arc::clone(&last_seen),
        )
        .counting(Arc::clone(&connections))
        .start();
        let streams = Arc::new(match &broker {
            Some(broker) => stream::Streams::of_node(broker.node().clone()),
            None => stream::Streams::default(),
        });
        if let Some(broker) = &broker {
            let gauges = Arc::clone(&metrics);
            broker.share_gauges(Box::new(move || gauges.cluster_share()));
            broker.route(Kind::Session, presence.clone().recipient());
            let feed = presence::PresenceFeed {
                presence: presence.clone(),
            }
            .start();
            broker.route(Kind::Presence, feed.recipient());
            broker.watch(presence.clone().recipient());
            let relay = stream::StreamRelay {
                streams: Arc::clone(&streams),
                broker: broker.clone(),
            }
            .start();
            broker.route(Kind::Stream, relay.recipient());
        }
        let room_link = broker.as_ref().map(|broker| {
            let router = RoomRouter::new(broker.clone()).start();
            broker.route(Kind::Room, router.clone().recipient());
            broker.watch(router.clone().recipient());
            RoomLink {
                broker: broker.clone(),
                router,
                pool: pool.clone(),
                metrics: Arc::clone(&metrics),
            }
        });
        let hub = hub_ctx.run(Hub::new(
            pool.clone(),
            Arc::clone(&settings),
            presence.clone(),
            Arc::clone(&metrics),
            unseen_missed.into_iter().map(UserId).collect(),
            broker.clone(),
            room_link,
        ));
        if let Some(broker) = &broker {
            broker.route(Kind::Call, hub.clone().recipient());
            broker.watch(hub.clone().recipient());
        }
        let store = ChatStore::new(
            pool.clone(),
            presence.clone(),
            Arc::clone(&metrics),
            broker.is_some(),
        )
        .start();
        Realtime {
            presence,
            hub,
            store,
            metrics,
            connections,
            streams,
            broker,
            draining: Arc::default(),
            last_seen,
            pool,
            settings,
        }
    }

    /// Whether shutdown has begun (see [`Realtime::shutdown`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Server shutdown: live calls are closed in the log and rooms told, then every socket
    /// is closed with 1001 so clients reconnect; waits (briefly) until they are gone.
    pub async fn shutdown(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.hub.send(Shutdown).await.is_err() {
            log::warn!("hub gone before shutdown");
        }
        let open = self
            .presence
            .send(CloseAll {
                code: CloseCode::Away,
                reason: "server shutting down",
            })
            .await
            .unwrap_or(0);
        log::info!("closing {open} WebSocket connection(s)");
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN;
        while tokio::time::Instant::now() < deadline {
            let left = self.presence.send(CountSessions).await.unwrap_or(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the outboxes put the close frames on the wire.
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Who just went offline: written now rather than a write gap later, after the exit.
        self.last_seen.flush().await;
        if let Some(broker) = &self.broker {
            broker.leave().await;
        }
    }
}

/// The message a WebSocket client sees for an error (internal causes stay in the log).
pub(crate) fn ws_error(e: &ApiError) -> String {
    match e {
        ApiError::Database(_) | ApiError::Blocking(_) | ApiError::Internal(_) => {
            if e.code() == ErrorCode::Internal {
                log::error!("realtime request failed: {e}");
            }
            e.public_message()
        }
        ApiError::Pool(_) => e.public_message(),
        other => other.to_string(),
    }
}
