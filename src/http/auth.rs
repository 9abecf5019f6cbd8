//! Accounts: register, log in and out, read and change your own profile; and
//! [`Authenticated`], the extractor every protected route (and `/ws`) uses.

use std::future::Future;
use std::pin::Pin;

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    dev::Payload,
    get,
    http::header,
    patch, post, web, FromRequest, HttpRequest, HttpResponse,
};
use serde::{Deserialize, Serialize};

use crate::{
    auth,
    db::{
        self,
        models::{Capabilities, Capability, NewSession, NewUser, Role, Session, User},
    },
    domain::Revoked,
    error::{
        documented::{JsonBodyErrors, NotLoggedIn},
        ApiError, ApiResult, ErrorBody,
    },
    http::state::AppState,
    http::{self, users::UserView},
};

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "tertulia_session";

/// Mounts `/api/register`, `/api/login`, `/api/logout` and `/api/me`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(logout)
        .service(me)
        .service(update_me);
}

/// The caller, proved by the session cookie or an `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    /// The `sessions` row the credential belongs to (logout ends exactly this one).
    pub session_id: i64,
}

impl Authenticated {
    /// Refuses anyone who is not an admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.user.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("admin role required".to_owned()))
        }
    }
}

/// The token of an `Authorization: Bearer` header, when it carries one.
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The token a request carries: the bearer header wins over the cookie.
pub(crate) fn request_token(req: &HttpRequest) -> Option<String> {
    bearer_token(req)
        .map(str::to_owned)
        .or_else(|| req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()))
}

/// Resolves a token to its live session and user; banned users are refused.
pub(crate) async fn authenticate(
    state: &AppState,
    token: Option<String>,
) -> ApiResult<Authenticated> {
    let token = token.ok_or_else(no_credential)?;
    let hash = auth::token_hash(&token);
    let found = db::run(&state.pool, move |conn| {
        Ok(db::sessions::find_live(conn, &hash)?)
    })
    .await?;
    live_session(state, found)
}

/// The error for a request that carries no credential at all.
pub(crate) fn no_credential() -> ApiError {
    ApiError::Unauthorized("log in first".to_owned())
}

/// The rule on a token's lookup (`db::sessions::find_live`): a live session of a user who is
/// not banned. The token was just used, so its session's `last_used_at` is stored if stale
/// (written behind, see [`db::Touches`]).
pub(crate) fn live_session(
    state: &AppState,
    found: Option<(Session, User)>,
) -> ApiResult<Authenticated> {
    if let Some((session, _)) = &found {
        if db::sessions::touch_due(session) {
            state.session_touches.touch(session.id);
        }
    }
    match found {
        Some((_, user)) if user.banned => {
            Err(ApiError::Unauthorized("this account is banned".to_owned()))
        }
        Some((session, user)) => Ok(Authenticated {
            user,
            session_id: session.id,
        }),
        None => Err(ApiError::Unauthorized(
            "session expired or revoked; log in again".to_owned(),
        )),
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = ApiResult<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = request_token(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".to_owned()))?;
            authenticate(&state, token).await
        })
    }
}

/// `POST /api/register` body. The schema's bounds are `crate::auth`'s rules (a test holds
/// them equal): a nickname is trimmed, then 3 to 32 letters, digits, `_`, `-` or `.`,
/// starting with a letter or digit; a password is 8 to 256 characters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Unique in any case; surrounding spaces are dropped.
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = r"^\s*[\p{L}\p{N}][\p{L}\p{N}_.-]*\s*$"
    )]
    pub nickname: String,
    /// Not the nickname itself.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// Theme names (see `GET /api/themes`); case does not matter.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub themes: Vec<String>,
    /// Defaults to all three.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Capability>>, min_items = 1)]
    pub capabilities: Option<Capabilities>,
}

/// `value` without surrounding whitespace, or `None` if it is over `max` characters as sent:
/// the documented `maxLength` bounds what a client sends, spaces included (a 40-character name
/// padded to 60 is refused, not stored).
pub(crate) fn trimmed_within(value: &str, max: usize) -> Option<&str> {
    (value.chars().count() <= max).then(|| value.trim())
}

/// A registration that passed every rule `register` checks before it hashes the password or
/// touches the database.
#[derive(Debug)]
pub struct Registration {
    /// Trimmed.
    pub nickname: String,
    pub password: String,
    pub themes: Vec<String>,
    pub capabilities: Capabilities,
}

impl RegisterRequest {
    /// The checks `register` runs before any work: nickname and password rules, at least one
    /// capability. One function, so that the fuzz target `json_bodies` runs exactly these.
    pub fn checked(self) -> ApiResult<Registration> {
        let RegisterRequest {
            nickname,
            password,
            themes,
            capabilities,
        } = self;
        let nickname = trimmed_within(&nickname, auth::NICKNAME_MAX)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::InvalidField {
                field: "nickname",
                message: format!(
                    "nickname must be {} to {} characters long",
                    auth::NICKNAME_MIN,
                    auth::NICKNAME_MAX
                ),
            })?;
        auth::validate_nickname(&nickname).map_err(|message| ApiError::InvalidField {
            field: "nickname",
            message,
        })?;
        auth::validate_password(&password, &nickname).map_err(|message| {
            ApiError::InvalidField {
                field: "password",
                message,
            }
        })?;
        checked_theme_count(&themes)?;
        let capabilities = checked_capabilities(capabilities.unwrap_or(Capabilities {
            video: true,
            audio: true,
            text: true,
        }))?;
        Ok(Registration {
            nickname,
            password,
            themes,
            capabilities,
        })
    }
}

/// Most theme names one request may list: far more than anyone follows, and a bound on the
/// lookups (and on the "unknown theme(s)" message) a single request can cause.
pub(crate) const MAX_THEMES_PER_REQUEST: usize = 100;

/// Refuses a list of more than [`MAX_THEMES_PER_REQUEST`] theme names.
fn checked_theme_count(names: &[String]) -> ApiResult<()> {
    if names.len() > MAX_THEMES_PER_REQUEST {
        return Err(ApiError::InvalidField {
            field: "themes",
            message: format!(
                "at most {MAX_THEMES_PER_REQUEST} themes, not {}",
                names.len()
            ),
        });
    }
    Ok(())
}

/// Checks the capabilities a user chose: at least one.
fn checked_capabilities(caps: Capabilities) -> ApiResult<Capabilities> {
    if caps.is_empty() {
        Err(ApiError::InvalidField {
            field: "capabilities",
            message: "choose at least one capability: video, audio or text".to_owned(),
        })
    } else {
        Ok(caps)
    }
}

/// Resolves theme names to ids, refusing unknown names by name.
fn theme_ids(conn: &mut crate::db::DbConnection, names: &[String]) -> ApiResult<Vec<i64>> {
    let (found, unknown) = db::themes::resolve_names(conn, names)?;
    if !unknown.is_empty() {
        return Err(ApiError::InvalidField {
            field: "themes",
            message: format!("unknown theme(s): {}", unknown.join(", ")),
        });
    }
    Ok(found.into_iter().map(|t| t.id).collect())
}

/// Hashes on the blocking pool: argon2 takes tens of milliseconds of CPU.
async fn hash_off_reactor(password: String) -> ApiResult<String> {
    web::block(move || auth::hash_password(&password))
        .await?
        .map_err(ApiError::Internal)
}

/// Creates an account.
#[utoipa::path(
    post,
    path = "/api/register",
    tag = "accounts",
    request_body = RegisterRequest,
    security(()),
    responses(
        (status = 201, body = UserView),
        JsonBodyErrors,
        (status = 409, body = ErrorBody, description = "nickname taken"),
    )
)]
#[post("/register")]
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let Registration {
        nickname,
        password,
        themes,
        capabilities: caps,
    } = body.into_inner().checked()?;
    let hash = hash_off_reactor(password).await?;
    let view = db::run(&state.pool, move |conn| {
        let ids = theme_ids(conn, &themes)?;
        if db::users::find_by_nickname(conn, &nickname)?.is_some() {
            return Err(nickname_taken(&nickname));
        }
        let new = NewUser {
            nickname: &nickname,
            password_hash: &hash,
            can_video: caps.video,
            can_audio: caps.audio,
            can_text: caps.text,
            role: Role::User.as_str(),
            created_at: db::now_ms(),
        };
        let user = db::users::create(conn, &new, &ids).map_err(|e| match e {
            // Two registrations racing for one nickname: the loser hears the same answer.
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => nickname_taken(&nickname),
            other => other.into(),
        })?;
        Ok(UserView::load(conn, &user)?)
    })
    .await?;
    log::info!("registered user {} ({})", view.id, view.nickname);
    Ok(HttpResponse::Created().json(view))
}

fn nickname_taken(nickname: &str) -> ApiError {
    ApiError::Taken {
        field: "nickname",
        message: format!("nickname '{nickname}' is already taken"),
    }
}

/// `POST /api/login` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub nickname: String,
    pub password: String,
    /// Optionally replace the themes you follow as you log in.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub themes: Option<Vec<String>>,
}

/// `POST /api/login` answer: the same session as the cookie, as a bearer token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub user: UserView,
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Logs in: sets the session cookie and returns the same session as a bearer token.
#[utoipa::path(
    post,
    path = "/api/login",
    tag = "accounts",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, body = LoginResponse),
        JsonBodyErrors,
        (status = 401, body = ErrorBody, description = "wrong nickname or password (one answer for both)"),
        (status = 403, body = ErrorBody, description = "this account is banned"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After",
            headers(("Retry-After" = u64, description = "seconds until the next attempt may succeed"))),
    )
)]
#[post("/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest {
        nickname,
        password,
        themes,
    } = body.into_inner();
    let nickname = nickname.trim().to_owned();
    if let Some(names) = &themes {
        checked_theme_count(names)?;
    }
    // Counted before the password is checked, taken back if it is right: only failures use
    // up the window, and parallel guesses cannot all slip in before the first failure.
    let ip = http::client_ip::client_ip_string(&req, &state.settings.trusted_proxies);
    let attempt = LoginAttempt::start(&state, &ip, &nickname)?;

    let lookup = nickname.clone();
    let user = db::run(&state.pool, move |conn| {
        Ok(db::users::find_by_nickname(conn, &lookup)?)
    })
    .await?;
    // Verify against a dummy hash for unknown nicknames: both failures cost one argon2 run.
    let phc = user.as_ref().map_or_else(
        || auth::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let ok = web::block(move || auth::verify_password(&password, &phc)).await?;
    let user = match user {
        Some(user) if ok => user,
        _ => {
            return Err(ApiError::Unauthorized(
                "wrong nickname or password".to_owned(),
            ))
        }
    };
    attempt.succeeded(&state);
    if user.banned {
        return Err(ApiError::Forbidden("this account is banned".to_owned()));
    }

    let token = auth::new_token();
    let hash = auth::token_hash(&token);
    let ttl_ms = i64::try_from(state.settings.session_ttl().as_millis()).unwrap_or(i64::MAX);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect::<String>());
    let chose_themes = themes.is_some();
    let (view, expires_at) = db::run(&state.pool, move |conn| {
        if let Some(names) = themes {
            let ids = theme_ids(conn, &names)?;
            db::users::set_themes(conn, user.id, &ids)?;
        }
        let now = db::now_ms();
        let session = db::sessions::create(
            conn,
            &NewSession {
                token_hash: &hash,
                user_id: user.id,
                created_at: now,
                expires_at: now.saturating_add(ttl_ms),
                last_used_at: now,
                user_agent: user_agent.as_deref(),
            },
        )?;
        Ok((UserView::load(conn, &user)?, session.expires_at))
    })
    .await?;
    if chose_themes {
        // The user's other tokens may be cached with the themes they had.
        state.ws_tokens.forget_user(view.id);
    }
    log::info!("user {} logged in", view.id);
    let cookie = session_cookie(&state, token.clone());
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        user: view,
        token,
        expires_at,
    }))
}

/// One login attempt, counted against the nickname and the client's address.
struct LoginAttempt {
    ip_key: String,
    nick_key: String,
}

impl LoginAttempt {
    /// Counts the attempt, or refuses it (429 with a wait) when either key has used up its
    /// window with failures.
    fn start(state: &AppState, ip: &str, nickname: &str) -> ApiResult<Self> {
        let attempt = LoginAttempt {
            ip_key: format!("ip:{ip}"),
            nick_key: format!("nick:{}", nickname.to_lowercase()),
        };
        let limited = |retry_after_secs| ApiError::RateLimited { retry_after_secs };
        state
            .login_ip_limiter
            .hit(&attempt.ip_key)
            .map_err(limited)?;
        if let Err(wait) = state.login_limiter.hit(&attempt.nick_key) {
            state.login_ip_limiter.forgive(&attempt.ip_key);
            return Err(limited(wait));
        }
        Ok(attempt)
    }

    /// The password was right: the attempt is taken back from both counts.
    fn succeeded(self, state: &AppState) {
        state.login_ip_limiter.forgive(&self.ip_key);
        state.login_limiter.forgive(&self.nick_key);
    }
}

/// The session cookie: HttpOnly, SameSite=Strict, Secure when serving TLS.
fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    let max_age = i64::try_from(state.settings.session_ttl().as_secs()).unwrap_or(i64::MAX);
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.tls_enabled())
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

/// Ends the caller's session (the token stops working everywhere) and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "accounts",
    responses((status = 204, description = "logged out; the cookie is cleared"), NotLoggedIn)
)]
#[post("/logout")]
pub async fn logout(state: web::Data<AppState>, who: Authenticated) -> ApiResult<HttpResponse> {
    let session_id = who.session_id;
    db::run(&state.pool, move |conn| {
        Ok(db::sessions::revoke(conn, session_id)?)
    })
    .await?;
    state.sessions_revoked(who.user.id, Revoked::One(session_id));
    let mut gone = session_cookie(&state, String::new());
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// Your own profile.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "accounts",
    responses((status = 200, body = UserView), NotLoggedIn)
)]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, who: Authenticated) -> ApiResult<web::Json<UserView>> {
    let view = db::run(&state.pool, move |conn| {
        Ok(UserView::load(conn, &who.user)?)
    })
    .await?;
    Ok(web::Json(view))
}

/// `PATCH /api/me` body: any subset of the fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// Replace the themes you follow (names).
    #[schema(max_items = 100)]
    pub themes: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Capability>>, min_items = 1)]
    pub capabilities: Option<Capabilities>,
    /// Required with `new_password`.
    pub current_password: Option<String>,
    /// 8 to 256 characters, not your nickname; ends your other sessions.
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: Option<String>,
}

/// What a `PATCH /api/me` asks for, once the rules checked before any work have passed.
#[derive(Debug)]
pub struct MeChanges {
    pub themes: Option<Vec<String>>,
    /// At least one, when given.
    pub capabilities: Option<Capabilities>,
    /// `(new, current)`: the new password follows the rules; the current one is still to be
    /// verified against the stored hash.
    pub password: Option<(String, String)>,
}

impl UpdateMeRequest {
    /// The checks `update_me` runs before any work, for the user named `nickname`. One
    /// function, so that the fuzz target `json_bodies` runs exactly these.
    pub fn checked(self, nickname: &str) -> ApiResult<MeChanges> {
        let UpdateMeRequest {
            themes,
            capabilities,
            current_password,
            new_password,
        } = self;
        if let Some(names) = &themes {
            checked_theme_count(names)?;
        }
        let capabilities = capabilities.map(checked_capabilities).transpose()?;
        let password = match (new_password, current_password) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ApiError::BadRequest(
                    "current_password given without new_password".to_owned(),
                ))
            }
            (Some(_), None) => {
                return Err(ApiError::BadRequest(
                    "current_password is required to set a new password".to_owned(),
                ))
            }
            (Some(new), Some(current)) => {
                auth::validate_password(&new, nickname).map_err(ApiError::BadRequest)?;
                Some((new, current))
            }
        };
        Ok(MeChanges {
            themes,
            capabilities,
            password,
        })
    }
}

/// Changes your themes, capabilities or password (the current one is required); a new
/// password ends your other sessions.
#[utoipa::path(
    patch,
    path = "/api/me",
    tag = "accounts",
    request_body = UpdateMeRequest,
    responses(
        (status = 200, body = UserView),
        JsonBodyErrors,
        NotLoggedIn,
        (status = 403, body = ErrorBody, description = "current password wrong"),
    )
)]
#[patch("/me")]
pub(crate) async fn update_me(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<UpdateMeRequest>,
) -> ApiResult<web::Json<UserView>> {
    let MeChanges {
        themes,
        capabilities: caps,
        password,
    } = body.into_inner().checked(&who.user.nickname)?;
    let new_hash = match password {
        None => None,
        Some((new, current)) => {
            let phc = who.user.password_hash.clone();
            if !web::block(move || auth::verify_password(&current, &phc)).await? {
                return Err(ApiError::Forbidden("current password is wrong".to_owned()));
            }
            Some(hash_off_reactor(new).await?)
        }
    };
    let user_id = who.user.id;
    let keep = who.session_id;
    let password_changed = new_hash.is_some();
    let view = db::run(&state.pool, move |conn| {
        crate::db::write_transaction(conn, |conn| {
            if let Some(names) = &themes {
                let ids = theme_ids(conn, names)?;
                db::users::set_themes(conn, user_id, &ids)?;
            }
            if let Some(caps) = caps {
                db::users::set_capabilities(conn, user_id, caps)?;
            }
            if let Some(hash) = &new_hash {
                db::users::set_password_hash(conn, user_id, hash)?;
                db::sessions::revoke_others(conn, user_id, keep)?;
            }
            let user = db::users::find(conn, user_id)?
                .ok_or_else(|| ApiError::NotFound("user not found".to_owned()))?;
            Ok(UserView::load(conn, &user)?)
        })
    })
    .await?;
    if password_changed {
        state.sessions_revoked(user_id, Revoked::AllBut(keep));
    }
    state.profile_changed(&view);
    Ok(web::Json(view))
}
