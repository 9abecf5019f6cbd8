//! Settings: every knob of the server, from flags or the environment, with sane defaults.
//!
//! `cargo run` with no arguments serves <http://127.0.0.1:8080> from `./tertulia.db`; tests
//! build [`Settings::default()`] and override what they need (port 0, a temporary database).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

use crate::db::Durability;

/// Everything `tertulia serve` can be told. Each flag also reads a `TERTULIA_*` variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "TERTULIA_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// SQLite database file (created and migrated on first start), or a PostgreSQL URL
    /// (`postgres://user:password@host:port/db`, migrated on first start).
    #[arg(long, env = "DATABASE_URL", default_value = "tertulia.db")]
    pub database_url: String,

    /// Several nodes serving one community: the Redis they share (`redis://host:port`;
    /// docs/scale-out.md). Requires a PostgreSQL `--database-url` (every node the same).
    /// Without it this process serves alone and needs no Redis.
    #[arg(long, env = "TERTULIA_BROKER")]
    pub broker: Option<String>,

    /// This node's name in the cluster (default: a random one at each start).
    #[arg(long, env = "TERTULIA_NODE_ID")]
    pub node_id: Option<String>,

    /// The prefix of every Redis key and channel of this cluster (several clusters may share
    /// one Redis under different prefixes).
    #[arg(long, env = "TERTULIA_BROKER_PREFIX", default_value = "tertulia")]
    pub broker_prefix: String,

    /// Directory of the browser app served at `/`.
    #[arg(long, env = "TERTULIA_WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,

    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "TERTULIA_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// After a worker handles a WebSocket frame it keeps polling its sockets this many
    /// microseconds before it sleeps (0: off). Cuts the latency of a reply that follows
    /// soon (a relayed signal's answer) by the cost of waking an idle thread, at the price of
    /// a busy core while traffic flows: for a server with a dedicated core.
    #[arg(long, env = "TERTULIA_BUSY_POLL_US", default_value_t = 0)]
    pub busy_poll_us: u64,

    /// What a stored chat message or account survives once acknowledged: `full` (fsync at
    /// every commit: a power loss loses nothing acknowledged) or `normal` (fsync at
    /// checkpoints: a process crash loses nothing, a power loss may lose the latest commits).
    /// On PostgreSQL it sets `synchronous_commit` (`full`: on, `normal`: off) the same way.
    #[arg(long, env = "TERTULIA_SQLITE_SYNCHRONOUS", value_enum, default_value_t = Durability::Full)]
    pub sqlite_synchronous: Durability,

    /// Database connections in the pool.
    #[arg(long, env = "TERTULIA_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,

    /// How long a login session (cookie or bearer token) lives, in hours.
    #[arg(long, env = "TERTULIA_SESSION_TTL_HOURS", default_value_t = 24 * 30)]
    pub session_ttl_hours: u64,

    /// How often expired sessions are deleted from the database, in seconds.
    #[arg(long, env = "TERTULIA_SESSION_PURGE_SECS", default_value_t = 600)]
    pub session_purge_secs: u64,

    /// Failed logins allowed per nickname in each window (a successful login does not
    /// count): then that nickname waits for the window's end, whoever tries it.
    #[arg(long, env = "TERTULIA_LOGIN_ATTEMPTS", default_value_t = 5)]
    pub login_attempts: u32,

    /// Failed logins allowed per client address in each window (successes do not count).
    /// Generous, because a classroom or an office behind one NAT shares one address; it
    /// stops one machine from guessing passwords across many nicknames.
    #[arg(long, env = "TERTULIA_LOGIN_IP_ATTEMPTS", default_value_t = 100)]
    pub login_ip_attempts: u32,

    /// Reverse proxies whose forwarding headers (`Forwarded`, else `X-Forwarded-For` and
    /// `X-Forwarded-Proto`) are believed, as addresses or CIDR blocks, comma separated
    /// (e.g. `127.0.0.1,10.0.0.0/8`). A request from anywhere else is taken to come from
    /// its socket's peer, whatever headers it carries.
    #[arg(long, env = "TERTULIA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::http::client_ip::parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Length of the login rate-limit window, in seconds.
    #[arg(long, env = "TERTULIA_LOGIN_WINDOW_SECS", default_value_t = 60)]
    pub login_window_secs: u64,

    /// Largest accepted JSON request body, in bytes.
    #[arg(long, env = "TERTULIA_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Browser origins allowed to open `/ws` (comma separated); empty: the server's own origin.
    #[arg(long, env = "TERTULIA_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// PEM certificate chain: serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN).
    #[arg(long, env = "TERTULIA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "TERTULIA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Generate (once, beside the database) a self-signed certificate and serve HTTPS with it.
    #[arg(long, env = "TERTULIA_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// Also listen here with plain HTTP that only redirects to HTTPS.
    #[arg(long, env = "TERTULIA_HTTP_REDIRECT_BIND")]
    pub http_redirect_bind: Option<SocketAddr>,

    /// STUN/TURN server URLs handed to browsers (comma separated), e.g. `stun:stun.example.org:3478`.
    #[arg(long, env = "TERTULIA_ICE_URLS", value_delimiter = ',')]
    pub ice_urls: Vec<String>,

    /// coturn `static-auth-secret`: TURN credentials are then minted per user and expire.
    #[arg(long, env = "TERTULIA_TURN_SECRET")]
    pub turn_secret: Option<String>,

    /// Lifetime of minted TURN credentials, in seconds.
    #[arg(long, env = "TERTULIA_TURN_TTL_SECS", default_value_t = 3600)]
    pub turn_ttl_secs: u64,

    /// Largest WebSocket frame accepted, in bytes (larger: close 1009).
    #[arg(long, env = "TERTULIA_WS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_frame_bytes: usize,

    /// Sustained client frames per second allowed on one connection (token bucket rate).
    #[arg(long, env = "TERTULIA_WS_RATE_PER_SEC", default_value_t = 50)]
    pub ws_rate_per_sec: u32,

    /// Burst of client frames allowed on top of the rate (token bucket size).
    #[arg(long, env = "TERTULIA_WS_RATE_BURST", default_value_t = 200)]
    pub ws_rate_burst: u32,

    /// Frames waiting to be written to one client before it is closed as too slow (1013).
    #[arg(long, env = "TERTULIA_WS_OUTBOUND_QUEUE", default_value_t = 256)]
    pub ws_outbound_queue: usize,

    /// Open WebSocket connections allowed per user.
    #[arg(long, env = "TERTULIA_WS_MAX_CONNS_PER_USER", default_value_t = 8)]
    pub ws_max_conns_per_user: usize,

    /// Interval between server pings, in milliseconds.
    #[arg(long, env = "TERTULIA_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,

    /// A connection silent this long (no frame, no pong) is dropped, in milliseconds.
    #[arg(long, env = "TERTULIA_CLIENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub client_timeout_ms: u64,

    /// How long a call rings before it is missed, in milliseconds.
    #[arg(long, env = "TERTULIA_RING_TIMEOUT_MS", default_value_t = 30_000)]
    pub ring_timeout_ms: u64,

    /// How long a running call waits for a participant whose last connection dropped, in
    /// milliseconds, before it goes on without them (0: at once). The default, 20 s, covers
    /// the browser client's first five reconnect attempts (0.5 + 1 + 2 + 4 + 8 s of backoff)
    /// and a phone switching networks, while the other side of a call that really ended is
    /// told within a short wait; their media, peer to peer, flows on meanwhile.
    #[arg(
        long,
        env = "TERTULIA_CALL_RECONNECT_GRACE_MS",
        default_value_t = 20_000
    )]
    pub call_reconnect_grace_ms: u64,

    /// Most members one room (call or chat) may hold at once.
    #[arg(long, env = "TERTULIA_ROOM_MEMBER_CAP", default_value_t = 6)]
    pub room_member_cap: usize,

    /// How often presence changes are coalesced and pushed, in milliseconds.
    #[arg(long, env = "TERTULIA_PRESENCE_TICK_MS", default_value_t = 50)]
    pub presence_tick_ms: u64,

    /// Mounts `GET /ws-echo`, a WebSocket echo without authentication that shares `/ws`'s
    /// frame handling, for the Autobahn|Testsuite (`tests/autobahn/run.sh`). Never in
    /// production: hidden, off by default.
    #[arg(long, env = "TERTULIA_WS_ECHO_FOR_TESTS", hide = true)]
    pub ws_echo_for_tests: bool,

    /// Most presence frames pushed per second over all connections (0: no limit). A push is
    /// one frame per connection, so in a lobby larger than this times the tick, pushes come
    /// less often than every tick (5,000 connections: every 200 ms), the changes between
    /// them coalesced into one batch.
    #[arg(
        long,
        env = "TERTULIA_PRESENCE_FRAMES_PER_SEC",
        default_value_t = 25_000
    )]
    pub presence_frames_per_sec: u32,
}

impl Default for Settings {
    /// The built-in defaults, ignoring flags (tests start from these).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: Settings,
        }
        <Defaults as clap::Parser>::parse_from(["tertulia"]).settings
    }
}

impl Settings {
    /// Whether the server terminates TLS itself.
    pub(crate) fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed
    }

    /// How long a login session lives.
    pub(crate) fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_hours * 3600)
    }
}
