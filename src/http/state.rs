//! [`AppState`]: what every HTTP handler (and the `/ws` handshake) shares: the pool, the
//! settings, the limiters, the metrics registry and the realtime core's handle; and the hooks
//! that tell the live parts of the server about revoked sessions and changed profiles.

use std::sync::Arc;

use crate::{
    auth::TokenCache,
    config::Settings,
    db::{self, DbPool},
    domain::Revoked,
    http::{auth::Authenticated, ratelimit::RateLimiter, users::UserView},
    metrics::Metrics,
    realtime::{
        presence::{ProfileChanged, RevokeSessions},
        protocol::{SharedStr, UserId},
        Realtime,
    },
};

/// Everything a request handler needs, shared by all workers (Lemmy's `LemmyContext`).
pub struct AppState {
    pub pool: DbPool,
    pub settings: Arc<Settings>,
    /// Failed logins per nickname (`--login-attempts`).
    pub login_limiter: RateLimiter,
    /// Failed logins per client address (`--login-ip-attempts`), behind trusted proxies the
    /// client's own.
    pub login_ip_limiter: RateLimiter,
    /// Everything `/metrics` exports; actors keep a clone to add their own series.
    pub metrics: Arc<Metrics>,
    /// The realtime actors (presence, hub, chat store) and their counters; every WebSocket
    /// session holds this one shared handle (a clone of `Realtime` would cost each
    /// connection its own actor address senders).
    pub realtime: Arc<Realtime>,
    /// Credentials that recently opened a WebSocket, with the user's themes: a burst of
    /// connections checks each token in the database once. The hooks below forget a user's
    /// entries whenever a session is revoked or the user changes.
    pub ws_tokens: TokenCache<(Authenticated, Vec<String>)>,
    /// Login sessions just used whose `last_used_at` is stale, stored together.
    pub session_touches: Arc<db::Touches>,
}

impl AppState {
    /// Tells the live parts of the server that some of a user's sessions are gone.
    pub(crate) fn sessions_revoked(&self, user_id: i64, which: Revoked) {
        log::debug!("sessions of user {user_id} revoked: {which:?}");
        // Before anything else: the next upgrade with a revoked token goes to the database.
        self.ws_tokens.forget_user(user_id);
        // Presence knows every socket and the login session that opened it: it closes the
        // matching ones with 4001 at once.
        self.realtime.presence.do_send(RevokeSessions {
            user_id: UserId(user_id),
            which,
        });
    }

    /// Tells the live parts of the server that a user's profile changed.
    pub(crate) fn profile_changed(&self, user: &UserView) {
        log::debug!("profile of user {} changed", user.id);
        self.ws_tokens.forget_user(user.id);
        self.realtime.presence.do_send(ProfileChanged {
            user_id: UserId(user.id),
            nickname: SharedStr::from(user.nickname.as_str()),
            capabilities: user.capabilities,
            themes: user.themes.clone().into(),
        });
    }
}
