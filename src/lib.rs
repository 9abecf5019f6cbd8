//! # Tertulia
//!
//! A self-hosted server where registered people, each with interests (themes) and
//! capabilities (video, audio, text), meet in a live lobby and talk by text chat or WebRTC
//! video call. The server keeps accounts and chat in SQLite, runs the dialogue lifecycle,
//! relays WebRTC signaling between the peers of a room and serves the browser app in `web/`.
//!
//! ## Layout
//!
//! - [`config`]: [`config::Settings`], every flag and `TERTULIA_*` variable with its default.
//! - [`startup`]: [`startup::Application`] binds, migrates, starts the actors, mounts routes.
//! - [`http::state`]: [`http::state::AppState`], what every handler shares (pool, settings,
//!   limiters, the realtime core's handle).
//! - [`domain`]: the vocabulary every layer speaks: ids, room names, capabilities, role,
//!   presence status, call media, history cursors.
//! - [`error`]: [`error::ApiError`], the one error type, and the client-facing codes.
//! - [`auth`]: argon2id hashes, session tokens, nickname and password rules.
//! - [`db`]: SQLite or PostgreSQL behind one connection type, the pool and its settings, embedded
//!   migrations per backend, one file of queries per table;
//!   the schema in `db/schema.rs` is what `diesel print-schema` prints.
//! - [`http`]: the JSON API, one file per resource; [`http::openapi`] documents it.
//! - [`metrics`]: the Prometheus registry behind `/metrics` and the middleware timing requests.
//! - [`tls`]: HTTPS (rustls, HTTP/2 by ALPN), the self-signed LAN certificate, HSTS and the
//!   plain-HTTP redirect.
//! - [`busy_poll`]: `--busy-poll-us`, a worker polling its sockets briefly after traffic
//!   instead of sleeping (latency for CPU).
//! - [`realtime`]: `GET /ws` — the session, presence, room, hub (rooms and calls) and
//!   chat-store actors and the wire protocol they speak; the same sessions also run over
//!   `GET /api/stream` + `POST` (Server-Sent Events, [`realtime::stream`]).
//!
//! Who owns what state: the database owns accounts, themes, sessions, chat and the call log;
//! nothing else caches them beyond one request. Live state is owned by exactly one actor
//! each: a connection by its `SessionActor`, who is online by the `PresenceActor`, a room's
//! members by its `RoomActor`, live rooms and calls by the `Hub`.

pub mod auth;
pub mod busy_poll;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod realtime;
pub mod startup;
pub mod tls;
