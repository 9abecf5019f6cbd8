//! Building and running the server: [`Application::build`] binds (port 0 picks a free port),
//! opens and migrates the database, starts the actors and mounts every route;
//! [`Application::run_until_stopped`] serves until a signal, a [`ShutdownTrigger`] or
//! [`ServerHandle::stop`].

use std::{io, net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    dev::{Server, ServerHandle},
    error::{InternalError, JsonPayloadError, PathError, QueryPayloadError},
    guard,
    middleware::{from_fn, Condition, DefaultHeaders, Logger},
    web, App, HttpRequest, HttpServer,
};

use crate::{
    auth::TokenCache,
    config::Settings,
    db::{self, DbPool},
    error::{error_response, error_response_with_status, ErrorCode},
    http::state::AppState,
    http::{self, ratelimit::RateLimiter},
    metrics::{Metrics, RecordMetrics},
    realtime::{
        broker::{Broker, NodeId},
        Realtime,
    },
};

/// How long a checked WebSocket credential is trusted without the database (see
/// [`TokenCache`]): as long as `db::sessions::find_live` waits before touching `last_used_at`
/// again, so that stays as current as before; a change made outside the server (the
/// `create-admin` command) is seen within it.
const WS_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Most credentials remembered at once (an entry is a few hundred bytes).
const WS_TOKEN_CAPACITY: usize = 100_000;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened or migrated (the message says which and what to do).
    #[error("{0}")]
    Database(#[from] db::OpenError),
    #[error("cannot migrate database '{url}': {message}")]
    Migration { url: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Several nodes asked for and not possible (the message says why and what to do).
    #[error("{0}")]
    Broker(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    /// The plain-HTTP listener that only redirects to HTTPS, when configured.
    redirect_port: Option<u16>,
    server: Server,
    shutdown: Arc<tokio::sync::Notify>,
}

/// Connections the kernel completes and queues for the server before it accepts them (as
/// actix-web's own `bind`; the kernel caps it at `net.core.somaxconn`). std's
/// `TcpListener::bind` asks for 128: a burst of a few hundred clients arriving at once then
/// had its surplus SYNs dropped, and those clients waited a second for their retry.
pub const LISTEN_BACKLOG: i32 = 1024;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, so a restart
/// does not wait for the last run's connections in TIME_WAIT).
pub fn bind_listener(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

impl Application {
    /// Opens the database (migrating it), binds the listener and prepares the server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        if settings.broker.is_some()
            && db::Backend::of(&settings.database_url) != db::Backend::Postgres
        {
            return Err(StartupError::Broker(format!(
                "--broker needs a PostgreSQL database shared by every node (--database-url \
                 postgres://…); '{}' is a SQLite file only this process can use",
                settings.database_url
            )));
        }
        let pool = open_database(&settings)?;
        let listener = bind_listener(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        let port = listener.local_addr()?.port();
        let tls = crate::tls::server_config(&settings)?;
        let redirect_listener = match (&tls, settings.http_redirect_bind) {
            (Some(_), Some(addr)) => {
                Some(bind_listener(addr).map_err(|source| StartupError::Bind { addr, source })?)
            }
            (None, Some(addr)) => {
                log::warn!("--http-redirect-bind {addr} ignored: TLS is off");
                None
            }
            (_, None) => None,
        };
        let redirect_port = match &redirect_listener {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        let https_port = tls.is_some().then_some(port);

        let metrics = Arc::new(Metrics::new());
        register_pool_gauges(&metrics, &pool);
        let broker = match &settings.broker {
            Some(url) => {
                let node = match &settings.node_id {
                    Some(id) if valid_node_id(id) => NodeId(id.as_str().into()),
                    Some(id) => {
                        return Err(StartupError::Broker(format!(
                            "--node-id '{id}': use 1 to 64 letters, digits, '-' or '_'"
                        )))
                    }
                    None => NodeId::random(),
                };
                let broker = Broker::connect(url, node, &settings.broker_prefix)
                    .await
                    .map_err(|e| StartupError::Broker(e.to_string()))?;
                register_broker_gauges(&metrics, &broker);
                Some(broker)
            }
            None => None,
        };
        // After a restart no call can still be ringing or running (alone: with other nodes,
        // theirs are, and a call left by a node that is gone is theirs to end); the hub
        // learns who has missed calls to be told.
        let alone = broker.is_none();
        let (closed, unseen_missed) = db::run(&pool, move |conn| {
            let closed = if alone {
                db::calls::close_dangling(conn, None)?
            } else {
                0
            };
            Ok((closed, db::calls::callees_with_unseen_missed(conn)?))
        })
        .await
        .map_err(|e| StartupError::Migration {
            url: settings.database_url.clone(),
            message: format!("cannot close calls left open: {e}"),
        })?;
        if closed > 0 {
            log::info!("closed {closed} call(s) left open by the last run");
        }
        let realtime = Arc::new(Realtime::start(
            pool.clone(),
            Arc::clone(&settings),
            &metrics,
            unseen_missed,
            broker,
        ));
        let shutdown = Arc::new(tokio::sync::Notify::new());

        let session_touches = db::Touches::new(pool.clone(), "last_used_at", db::sessions::touch);
        let flush_at_shutdown = Arc::clone(&session_touches);
        let state = web::Data::new(AppState {
            pool,
            login_limiter: RateLimiter::new(
                settings.login_attempts,
                Duration::from_secs(settings.login_window_secs),
            ),
            login_ip_limiter: RateLimiter::new(
                settings.login_ip_attempts,
                Duration::from_secs(settings.login_window_secs),
            ),
            settings: Arc::clone(&settings),
            metrics: Arc::clone(&metrics),
            realtime: Arc::clone(&realtime),
            ws_tokens: TokenCache::new(WS_TOKEN_TTL, WS_TOKEN_CAPACITY),
            session_touches,
        });
        spawn_session_purge(
            Arc::downgrade(&state.clone().into_inner()),
            Duration::from_secs(settings.session_purge_secs.max(1)),
        );

        let app_settings = Arc::clone(&settings);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(json_config(&app_settings))
                .app_data(web::PathConfig::default().error_handler(path_error))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .wrap(from_fn(http::origin::refuse_cross_origin_writes))
                .wrap(security_headers())
                // Not /ws: the logger keeps a copy of its format with every response until its
                // body ends, i.e. for the life of each WebSocket; ws_route logs upgrades. Nor
                // the HTTP transport (its stream, and its posts: one per client frame, as
                // unlogged as a WebSocket's frames). The client's address as
                // `--trusted-proxies` allow (never a header anyone could write). Only when
                // its lines would be written: the logger renders the request's part of the
                // line as the request comes, whatever the log level.
                .wrap(Condition::new(
                    log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info),
                    {
                        let proxies = app_settings.trusted_proxies.clone();
                        Logger::new("%{client}xi \"%r\" %s %b %Dms")
                            .custom_request_replace("client", move |req| {
                                http::client_ip::client_ip_string(req.request(), &proxies)
                            })
                            .exclude("/healthz")
                            .exclude("/ws")
                            .exclude("/api/stream")
                            .exclude_regex("^/api/stream/")
                    },
                ))
                // Outermost, so it times everything, including the logger.
                .wrap(RecordMetrics::new(Arc::clone(&metrics)))
                .configure(http::configure)
                .service(
                    actix_files::Files::new("/", &app_settings.web_dir)
                        .index_file("index.html")
                        // Files are served with GET and HEAD; any other method falls through
                        // to the default service, a 405 with `Allow` (actix-files' own 405
                        // has neither `Allow` nor the JSON body).
                        .guard(guard::Any(guard::Get()).or(guard::Head()))
                        .default_handler(web::to(http::not_found)),
                )
                .default_service(web::to(http::not_found))
                .wrap(from_fn(move |req, next| {
                    crate::tls::transport_security(https_port, req, next)
                }))
        })
        .tcp_nodelay(true)
        // No lingering close: when a response ends before its request body did (every
        // WebSocket), actix-http by default keeps reading until the client's FIN, or for 1 s,
        // before it sends its own FIN; a WebSocket client waits for the server's FIN (RFC 6455
        // §7.1.1), so every close reached the browser a second late. A WebSocket's body now
        // ends right after the close handshake instead (`realtime::frames::upgrade`). A
        // shorter timeout is no way out: actix-http dates the deadline by a clock it updates
        // every 500 ms and never wakes for one already past, so a linger under ~0.5 s can
        // leave the connection open until the client ends it (at 100 ms: no FIN in 15 s). An
        // HTTP error sent before its request body was read (a 413) loses the linger too.
        .client_disconnect_timeout(Duration::ZERO)
        // A client that ends its side of an HTTP/1 connection is gone: an event stream
        // (`GET /api/stream`) reads no request body, so actix-http would otherwise go on
        // writing to a closed tab until a heartbeat's write failed, and its session would
        // stay online until then. Browsers never half-close a request.
        .h1_allow_half_closed(false)
        .shutdown_timeout(5)
        .shutdown_signal(shutdown_signal(
            realtime,
            flush_at_shutdown,
            Arc::clone(&shutdown),
        ));
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        server = match tls {
            Some(tls) => {
                #[cfg(unix)]
                actix_web::rt::spawn(crate::tls::reload_on_sighup(tls.resolver)?);
                server.listen_rustls_0_23(listener, tls.config)?
            }
            // HTTP/1.1, and HTTP/2 with prior knowledge (h2c) for clients that speak it (the
            // HTTP transport of tertulia-bench); browsers speak HTTP/2 only over TLS.
            None => server.listen_auto_h2c(listener)?,
        };
        if let Some(redirect) = redirect_listener {
            server = server.listen(redirect)?;
        }
        let server = server.run();
        Ok(Application {
            port,
            redirect_port,
            server,
            shutdown,
        })
    }

    /// Starts the same clean shutdown as SIGTERM: sockets get 1001, then the server stops.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(Arc::clone(&self.shutdown))
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the plain-HTTP redirect listener, when TLS and `--http-redirect-bind` are on.
    pub fn redirect_port(&self) -> Option<u16> {
        self.redirect_port
    }

    /// A handle that can stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM, or [`ServerHandle::stop`]).
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.server.await
    }
}

/// Starts a clean shutdown of one [`Application`] (see [`Application::shutdown_trigger`]).
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<tokio::sync::Notify>);

impl ShutdownTrigger {
    /// Begins the shutdown; returns at once.
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

/// Resolves on SIGINT, SIGTERM or a [`ShutdownTrigger`], after closing every WebSocket with
/// 1001 (rooms and calls told first) and writing the `last_used_at` still waiting in
/// `session_touches`; the HTTP server then stops gracefully.
async fn shutdown_signal(
    realtime: Arc<Realtime>,
    session_touches: Arc<db::Touches>,
    trigger: Arc<tokio::sync::Notify>,
) {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => log::info!("SIGINT: shutting down"),
        () = terminate => log::info!("SIGTERM: shutting down"),
        () = trigger.notified() => log::info!("shutdown requested"),
    }
    realtime.shutdown().await;
    session_touches.flush().await;
}

/// Opens the pool and applies pending migrations.
pub fn open_database(settings: &Settings) -> Result<DbPool, StartupError> {
    let (pool, applied) = db::open(
        &settings.database_url,
        settings.db_pool_size,
        settings.sqlite_synchronous,
    )?;
    for version in applied {
        log::info!("applied migration {version}");
    }
    Ok(pool)
}

/// Exports the database pool's use: connections open, idle and in use, and the maximum.
fn register_pool_gauges(metrics: &Metrics, pool: &DbPool) {
    let help = "Database pool connections, by state (idle or in use).";
    let p = pool.clone();
    metrics.gauge_fn(
        "tertulia_db_pool_connections",
        help,
        &[("state", "idle")],
        move || i64::from(p.state().idle_connections),
    );
    let p = pool.clone();
    metrics.gauge_fn(
        "tertulia_db_pool_connections",
        help,
        &[("state", "in_use")],
        move || {
            let state = p.state();
            i64::from(state.connections.saturating_sub(state.idle_connections))
        },
    );
    let max = i64::from(pool.max_size());
    metrics.gauge_fn(
        "tertulia_db_pool_max_connections",
        "Most connections the database pool may open.",
        &[],
        move || max,
    );
}

/// Deletes expired sessions every `every`, starting now, for as long as the server's state
/// lives (the task ends once the server has stopped and dropped it).
/// A node id names keys, channels and stream ids: letters, digits, `-` and `_`.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `/metrics` series of the broker: whether Redis answers, and how many nodes are alive.
fn register_broker_gauges(metrics: &Metrics, broker: &Broker) {
    let up = broker.clone();
    metrics.gauge_fn(
        "tertulia_broker_up",
        "1 while the broker (Redis) answers this node's heartbeat, 0 while it does not",
        &[],
        move || i64::from(up.is_up()),
    );
    let nodes = broker.clone();
    metrics.gauge_fn(
        "tertulia_cluster_nodes",
        "Nodes of the cluster seen alive at the last heartbeat, this one included",
        &[],
        move || i64::try_from(nodes.peers().len() + 1).unwrap_or(i64::MAX),
    );
}

fn spawn_session_purge(state: std::sync::Weak<AppState>, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut interval = actix_web::rt::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(state) = state.upgrade() else { break };
            match db::run(&state.pool, |conn| Ok(db::sessions::purge_expired(conn)?)).await {
                Ok(0) => {}
                Ok(n) => log::info!("purged {n} expired sessions"),
                Err(e) => log::warn!("purging expired sessions failed: {e}"),
            }
        }
    });
}

/// JSON bodies: a size limit, and every failure as the API's JSON error.
fn json_config(settings: &Settings) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(settings.max_body_bytes)
        .error_handler(|err, _req| {
            let (code, message) = match &err {
                JsonPayloadError::OverflowKnownLength { length, limit } => (
                    ErrorCode::TooLarge,
                    format!("request body of {length} bytes is over the {limit}-byte limit"),
                ),
                JsonPayloadError::Overflow { limit } => (
                    ErrorCode::TooLarge,
                    format!("request body is over the {limit}-byte limit"),
                ),
                JsonPayloadError::ContentType => (
                    ErrorCode::BadRequest,
                    "Content-Type must be application/json".to_owned(),
                ),
                JsonPayloadError::Deserialize(e) => {
                    (ErrorCode::BadRequest, format!("invalid JSON body: {e}"))
                }
                other => (
                    ErrorCode::BadRequest,
                    format!("invalid request body: {other}"),
                ),
            };
            let status = if matches!(err, JsonPayloadError::ContentType) {
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                code.status()
            };
            let response = error_response_with_status(status, code, message);
            InternalError::from_response(err, response).into()
        })
}

fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    let response = error_response(ErrorCode::BadRequest, format!("invalid path: {err}"));
    InternalError::from_response(err, response).into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let response = error_response(ErrorCode::BadRequest, format!("invalid query: {err}"));
    InternalError::from_response(err, response).into()
}

/// Headers on every response: no inline script, no framing, no sniffing.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; \
             base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
}
