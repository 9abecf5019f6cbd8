//! The admin API under `/api/admin`: users (list, detail, ban, unban, delete, role, kick),
//! themes (create, update, delete) and stats.
//!
//! The whole scope sits behind [`require_admin`]: no credential is a 401, a non-admin a 403,
//! before any route, body or path is even looked at (unknown admin paths included). An admin
//! may not ban, delete or demote themselves, so the server always keeps one admin.

use std::collections::BTreeMap;

use actix_web::{
    body::{EitherBody, MessageBody},
    delete,
    dev::{Payload, ServiceRequest, ServiceResponse},
    get,
    middleware::{from_fn, Next},
    patch, post, put, web, FromRequest, HttpMessage, HttpRequest, HttpResponse,
};
use serde::{Deserialize, Serialize};

use crate::{
    db::{
        self,
        models::{NewTheme, Role, Session},
        themes::ThemeChanges,
        users::DirectoryFilter,
    },
    domain::Revoked,
    error::{
        documented::{AdminDenied, InvalidParams, JsonBodyErrors},
        ApiError, ApiResult, ErrorBody,
    },
    http::state::AppState,
    http::{
        auth::{authenticate, request_token, trimmed_within, Authenticated},
        themes::ThemeView,
        users::{load_page, DirectoryQuery, UserPage, UserView},
    },
};

/// Longest theme name, in characters.
pub const THEME_NAME_MAX: usize = 48;
/// Longest theme description, in characters.
pub const THEME_DESCRIPTION_MAX: usize = 500;

/// Mounts the `/admin` scope (inside `/api`), guarded by [`require_admin`].
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(require_admin))
            .service(list_users)
            .service(user_detail)
            .service(ban_user)
            .service(unban_user)
            .service(delete_user)
            .service(set_role)
            .service(kick_user)
            .service(create_theme)
            .service(update_theme)
            .service(delete_theme)
            .service(stats)
            .default_service(web::to(crate::http::not_found)),
    );
}

/// Lets only admins through; stores the caller in the request for [`Admin`]. A refusal is
/// answered here, as a response (not an error), so logs and metrics still see its route.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let err = ApiError::Internal("application state missing".to_owned());
        return Ok(req.error_response(err).map_into_right_body());
    };
    match authenticate(&state, request_token(req.request()))
        .await
        .and_then(|who| who.require_admin().map(|()| who))
    {
        Ok(who) => {
            req.extensions_mut().insert(who);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(err) => Ok(req.error_response(err).map_into_right_body()),
    }
}

/// The admin making the request.
#[derive(Debug, Clone)]
pub struct Admin(pub Authenticated);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Set by `require_admin`; checked again here in case a route is mounted outside it.
        let known = req.extensions().get::<Authenticated>().cloned();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = request_token(req);
        Box::pin(async move {
            let who = match known {
                Some(who) => who,
                None => {
                    let state = state.ok_or_else(|| {
                        ApiError::Internal("application state missing".to_owned())
                    })?;
                    authenticate(&state, token).await?
                }
            };
            who.require_admin()?;
            Ok(Admin(who))
        })
    }
}

impl Admin {
    /// Refuses an action an admin must not take on their own account.
    fn not_on_self(&self, user_id: i64, action: &str) -> ApiResult<()> {
        if self.0.user.id == user_id {
            Err(ApiError::Conflict(format!(
                "you cannot {action} yourself; ask another admin"
            )))
        } else {
            Ok(())
        }
    }
}

fn user_not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no user with id {id}"))
}

fn theme_not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no theme with id {id}"))
}

/// `GET /api/admin/users` query: the directory's, plus a banned filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AdminUsersQuery {
    /// Only followers of this theme (its name, any case).
    pub theme: Option<String>,
    /// Only users who can do this.
    pub capability: Option<crate::db::models::Capability>,
    /// `true`: only banned users; `false`: only the others; absent: everyone.
    pub banned: Option<bool>,
    /// 1-based page number; default 1.
    #[param(minimum = 1, maximum = 4294967295_i64, value_type = Option<i64>)]
    pub page: Option<u32>,
    /// Users per page, 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u32>,
}

/// Every user, banned ones included, by nickname; filterable and paginated.
#[utoipa::path(
    get,
    path = "/api/admin/users",
    tag = "admin",
    params(AdminUsersQuery),
    responses(
        (status = 200, body = UserPage),
        (status = 400, body = ErrorBody, description = "unknown theme or capability, page or per_page out of range"),
        AdminDenied,
    )
)]
#[get("/users")]
pub(crate) async fn list_users(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<AdminUsersQuery>,
) -> ApiResult<web::Json<UserPage>> {
    let AdminUsersQuery {
        theme,
        capability,
        banned,
        page,
        per_page,
    } = query.into_inner();
    let query = DirectoryQuery {
        theme,
        capability,
        online: None,
        q: None,
        page,
        per_page,
    };
    let filter = DirectoryFilter {
        banned,
        ..DirectoryFilter::default()
    };
    Ok(web::Json(load_page(&state, query, filter).await?))
}

/// A session as the admin API shows it (never its token or hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionView {
    pub id: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// Unix milliseconds, to the minute.
    pub last_used_at: i64,
    pub user_agent: Option<String>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        SessionView {
            id: s.id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_used_at: s.last_used_at,
            user_agent: s.user_agent,
        }
    }
}

/// `GET /api/admin/users/{id}` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserDetail {
    pub user: UserView,
    /// Live sessions, newest first.
    pub sessions: Vec<SessionView>,
}

/// One user and their live sessions.
#[utoipa::path(
    get,
    path = "/api/admin/users/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, body = UserDetail),
        InvalidParams,
        AdminDenied,
        (status = 404, body = ErrorBody),
    )
)]
#[get("/users/{id}")]
pub(crate) async fn user_detail(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<i64>,
) -> ApiResult<web::Json<UserDetail>> {
    let id = path.into_inner();
    let detail = db::run(&state.pool, move |conn| {
        let user = db::users::find(conn, id)?.ok_or_else(|| user_not_found(id))?;
        let sessions = db::sessions::live_for(conn, id)?;
        Ok(UserDetail {
            user: UserView::load(conn, &user)?,
            sessions: sessions.into_iter().map(SessionView::from).collect(),
        })
    })
    .await?;
    Ok(web::Json(detail))
}

/// Bans or unbans `id`; a ban also ends every session of the user.
async fn set_banned(state: &AppState, id: i64, banned: bool) -> ApiResult<UserView> {
    let view = db::run(&state.pool, move |conn| {
        crate::db::write_transaction(conn, |conn| {
            if db::users::set_banned(conn, id, banned)? == 0 {
                return Err(user_not_found(id));
            }
            if banned {
                db::sessions::revoke_all(conn, id)?;
            }
            let user = db::users::find(conn, id)?.ok_or_else(|| user_not_found(id))?;
            Ok(UserView::load(conn, &user)?)
        })
    })
    .await?;
    if banned {
        state.sessions_revoked(id, Revoked::All);
    }
    state.profile_changed(&view);
    Ok(view)
}

/// Bans a user: they cannot log in, and every session of theirs ends now.
#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/ban",
    tag = "admin",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, body = UserView),
        InvalidParams,
        AdminDenied,
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "you cannot ban yourself"),
    )
)]
#[post("/users/{id}/ban")]
pub(crate) async fn ban_user(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
) -> ApiResult<web::Json<UserView>> {
    let id = path.into_inner();
    admin.not_on_self(id, "ban")?;
    let view = set_banned(&state, id, true).await?;
    log::info!("admin {} banned user {id}", admin.0.user.id);
    Ok(web::Json(view))
}

/// Lifts a ban: the user may log in again.
#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/unban",
    tag = "admin",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, body = UserView),
        InvalidParams,
        AdminDenied,
        (status = 404, body = ErrorBody),
    )
)]
#[post("/users/{id}/unban")]
pub(crate) async fn unban_user(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
) -> ApiResult<web::Json<UserView>> {
    let id = path.into_inner();
    let view = set_banned(&state, id, false).await?;
    log::info!("admin {} unbanned user {id}", admin.0.user.id);
    Ok(web::Json(view))
}

/// Deletes a user with their sessions, theme links, memberships, messages and call log.
#[utoipa::path(
    delete,
    path = "/api/admin/users/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 204, description = "deleted"),
        InvalidParams,
        AdminDenied,
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "you cannot delete yourself"),
    )
)]
#[delete("/users/{id}")]
pub(crate) async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    admin.not_on_self(id, "delete")?;
    let deleted = db::run(&state.pool, move |conn| Ok(db::users::delete(conn, id)?)).await?;
    if deleted == 0 {
        return Err(user_not_found(id));
    }
    state.sessions_revoked(id, Revoked::All);
    log::info!("admin {} deleted user {id}", admin.0.user.id);
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /api/admin/users/{id}/role` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub role: Role,
}

/// Makes a user an admin or a plain user.
#[utoipa::path(
    put,
    path = "/api/admin/users/{id}/role",
    tag = "admin",
    params(("id" = i64, Path, description = "user id")),
    request_body = RoleRequest,
    responses(
        (status = 200, body = UserView),
        JsonBodyErrors,
        AdminDenied,
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "you cannot demote yourself"),
    )
)]
#[put("/users/{id}/role")]
pub async fn set_role(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
    body: web::Json<RoleRequest>,
) -> ApiResult<web::Json<UserView>> {
    let id = path.into_inner();
    let role = body.into_inner().role;
    if role != Role::Admin {
        admin.not_on_self(id, "demote")?;
    }
    let view = db::run(&state.pool, move |conn| {
        if db::users::set_role(conn, id, role)? == 0 {
            return Err(user_not_found(id));
        }
        let user = db::users::find(conn, id)?.ok_or_else(|| user_not_found(id))?;
        Ok(UserView::load(conn, &user)?)
    })
    .await?;
    log::info!(
        "admin {} set the role of user {id} to {}",
        admin.0.user.id,
        role.as_str()
    );
    state.profile_changed(&view);
    Ok(web::Json(view))
}

/// `DELETE /api/admin/users/{id}/sessions` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Kicked {
    /// How many sessions ended.
    pub revoked: usize,
}

/// Kicks a user: ends every session of theirs (they may log in again).
#[utoipa::path(
    delete,
    path = "/api/admin/users/{id}/sessions",
    tag = "admin",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, body = Kicked),
        InvalidParams,
        AdminDenied,
        (status = 404, body = ErrorBody),
    )
)]
#[delete("/users/{id}/sessions")]
pub(crate) async fn kick_user(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
) -> ApiResult<web::Json<Kicked>> {
    let id = path.into_inner();
    let revoked = db::run(&state.pool, move |conn| {
        db::users::find(conn, id)?.ok_or_else(|| user_not_found(id))?;
        Ok(db::sessions::revoke_all(conn, id)?)
    })
    .await?;
    state.sessions_revoked(id, Revoked::All);
    log::info!(
        "admin {} ended {revoked} sessions of user {id}",
        admin.0.user.id
    );
    Ok(web::Json(Kicked { revoked }))
}

/// Checks a theme name: at most [`THEME_NAME_MAX`] characters as sent, at least one once
/// trimmed, no control characters.
fn checked_theme_name(name: &str) -> ApiResult<&str> {
    // Too long as sent, or blank: either way outside 1 to THEME_NAME_MAX.
    let name = trimmed_within(name, THEME_NAME_MAX).unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "theme name must be 1 to {THEME_NAME_MAX} characters long"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "theme name must not contain control characters".to_owned(),
        ));
    }
    Ok(name)
}

/// Checks a theme description: at most [`THEME_DESCRIPTION_MAX`] characters as sent.
fn checked_description(description: &str) -> ApiResult<&str> {
    trimmed_within(description, THEME_DESCRIPTION_MAX).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "theme description must be at most {THEME_DESCRIPTION_MAX} characters long"
        ))
    })
}

/// Checks per-language descriptions: each language one the app speaks
/// ([`db::themes::DESCRIPTION_LANGUAGES`]), each text as [`checked_description`] wants;
/// returns them trimmed (an empty text removes that language's description).
fn checked_descriptions(
    descriptions: &BTreeMap<String, String>,
) -> ApiResult<Vec<(String, String)>> {
    descriptions
        .iter()
        .map(|(language, text)| {
            if !db::themes::DESCRIPTION_LANGUAGES.contains(&language.as_str()) {
                return Err(ApiError::InvalidField {
                    field: "descriptions",
                    message: format!(
                        "unknown description language '{language}'; use one of: {}",
                        db::themes::DESCRIPTION_LANGUAGES.join(", ")
                    ),
                });
            }
            Ok((language.clone(), checked_description(text)?.to_owned()))
        })
        .collect()
}

fn theme_name_taken(name: &str) -> ApiError {
    ApiError::Conflict(format!("a theme named '{name}' already exists"))
}

/// Maps a unique violation on `themes.name` to a clear 409.
fn theme_write_error(name: Option<&str>) -> impl FnOnce(diesel::result::Error) -> ApiError + '_ {
    move |e| match (e, name) {
        (
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ),
            Some(name),
        ) => theme_name_taken(name),
        (other, _) => other.into(),
    }
}

/// `POST /api/admin/themes` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateThemeRequest {
    /// At most 48 characters as sent; trimmed, at least one, no control characters;
    /// unique in any case.
    #[schema(
        min_length = 1,
        max_length = 48,
        pattern = r"^\s*[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?\s*$"
    )]
    pub name: String,
    /// At most 500 characters as sent; stored trimmed. Shown in a language that has no
    /// description of its own in `descriptions`.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// The description in each language: keys `en` and `pt-BR`, each text at most 500
    /// characters as sent, stored trimmed.
    #[serde(default)]
    #[schema(example = json!({"en": "Chess, openings and puzzles.", "pt-BR": "Xadrez, aberturas e problemas."}))]
    pub descriptions: BTreeMap<String, String>,
}

impl CreateThemeRequest {
    /// The name and description `create_theme` stores: trimmed and checked before any work.
    /// One function, so that the fuzz target `json_bodies` runs exactly these checks.
    pub fn checked(&self) -> ApiResult<(String, String)> {
        Ok((
            checked_theme_name(&self.name)?.to_owned(),
            checked_description(&self.description)?.to_owned(),
        ))
    }

    /// The per-language descriptions `create_theme` stores, checked (empty ones dropped).
    pub fn checked_descriptions(&self) -> ApiResult<Vec<(String, String)>> {
        let mut checked = checked_descriptions(&self.descriptions)?;
        checked.retain(|(_, text)| !text.is_empty());
        Ok(checked)
    }
}

/// Adds a theme.
#[utoipa::path(
    post,
    path = "/api/admin/themes",
    tag = "admin",
    request_body = CreateThemeRequest,
    responses(
        (status = 201, body = ThemeView),
        JsonBodyErrors,
        AdminDenied,
        (status = 409, body = ErrorBody, description = "name taken (in any case)"),
    )
)]
#[post("/themes")]
pub(crate) async fn create_theme(
    state: web::Data<AppState>,
    admin: Admin,
    body: web::Json<CreateThemeRequest>,
) -> ApiResult<HttpResponse> {
    let (name, description) = body.checked()?;
    let descriptions = body.checked_descriptions()?;
    let view = db::run(&state.pool, move |conn| {
        crate::db::write_transaction(conn, |conn| {
            let theme = db::themes::create(
                conn,
                &NewTheme {
                    name: &name,
                    description: &description,
                    created_at: db::now_ms(),
                },
            )
            .map_err(theme_write_error(Some(&name)))?;
            db::themes::set_descriptions(conn, theme.id, &descriptions)?;
            ThemeView::load(conn, theme.id)?.ok_or_else(|| theme_not_found(theme.id))
        })
    })
    .await?;
    log::info!(
        "admin {} created theme {} ({})",
        admin.0.user.id,
        view.id,
        view.name
    );
    Ok(HttpResponse::Created().json(view))
}

/// `PATCH /api/admin/themes/{id}` body: at least one field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateThemeRequest {
    /// A new name (followers keep following the theme); the same rules as a new theme's.
    #[schema(
        min_length = 1,
        max_length = 48,
        pattern = r"^\s*[^\s\x00-\x1F\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F])?\s*$"
    )]
    pub name: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// New descriptions by language (`en`, `pt-BR`); languages not listed keep theirs, an
    /// empty text removes that language's description.
    #[schema(example = json!({"en": "Chess, openings and puzzles."}))]
    pub descriptions: Option<BTreeMap<String, String>>,
}

impl UpdateThemeRequest {
    /// The new name and description `update_theme` stores (at least one): trimmed and checked
    /// before any work. One function, so that the fuzz target `json_bodies` runs exactly these
    /// checks.
    pub fn checked(&self) -> ApiResult<(Option<String>, Option<String>)> {
        if self.name.is_none() && self.description.is_none() && self.descriptions.is_none() {
            return Err(ApiError::BadRequest(
                "nothing to change: give a name, a description, descriptions or more".to_owned(),
            ));
        }
        let name = self
            .name
            .as_deref()
            .map(checked_theme_name)
            .transpose()?
            .map(str::to_owned);
        let description = self
            .description
            .as_deref()
            .map(checked_description)
            .transpose()?
            .map(str::to_owned);
        Ok((name, description))
    }

    /// The per-language descriptions `update_theme` sets (an empty text removes one).
    pub fn checked_descriptions(&self) -> ApiResult<Vec<(String, String)>> {
        self.descriptions
            .as_ref()
            .map(checked_descriptions)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// Renames and/or redescribes a theme.
#[utoipa::path(
    patch,
    path = "/api/admin/themes/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "theme id")),
    request_body = UpdateThemeRequest,
    responses(
        (status = 200, body = ThemeView),
        JsonBodyErrors,
        AdminDenied,
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "name taken"),
    )
)]
#[patch("/themes/{id}")]
pub(crate) async fn update_theme(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
    body: web::Json<UpdateThemeRequest>,
) -> ApiResult<web::Json<ThemeView>> {
    let id = path.into_inner();
    let (name, description) = body.checked()?;
    let descriptions = body.checked_descriptions()?;
    let renamed = name.is_some();
    let (view, followers) = db::run(&state.pool, move |conn| {
        crate::db::write_transaction(conn, |conn| {
            if name.is_some() || description.is_some() {
                let changes = ThemeChanges {
                    name: name.as_deref(),
                    description: description.as_deref(),
                };
                let changed = db::themes::update(conn, id, &changes)
                    .map_err(theme_write_error(name.as_deref()))?;
                if changed == 0 {
                    return Err(theme_not_found(id));
                }
            }
            let view = ThemeView::load(conn, id)?.ok_or_else(|| theme_not_found(id))?;
            db::themes::set_descriptions(conn, id, &descriptions)?;
            let view = if descriptions.is_empty() {
                view
            } else {
                ThemeView::load(conn, id)?.ok_or_else(|| theme_not_found(id))?
            };
            // A rename changes how followers' profiles read.
            let followers = if renamed {
                let ids = db::themes::followers(conn, id)?;
                views_of(conn, &ids)?
            } else {
                Vec::new()
            };
            Ok((view, followers))
        })
    })
    .await?;
    for follower in &followers {
        state.profile_changed(follower);
    }
    log::info!("admin {} updated theme {id}", admin.0.user.id);
    Ok(web::Json(view))
}

/// The profiles of these users, as they read now.
fn views_of(conn: &mut crate::db::DbConnection, user_ids: &[i64]) -> ApiResult<Vec<UserView>> {
    let users = db::users::find_many(conn, user_ids)?;
    Ok(UserView::load_many(conn, &users)?)
}

/// Deletes a theme. Its followers keep their accounts and their other themes; they simply
/// stop following this one.
#[utoipa::path(
    delete,
    path = "/api/admin/themes/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "theme id")),
    responses(
        (status = 204, description = "deleted"),
        InvalidParams,
        AdminDenied,
        (status = 404, body = ErrorBody),
    )
)]
#[delete("/themes/{id}")]
pub(crate) async fn delete_theme(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let followers = db::run(&state.pool, move |conn| {
        crate::db::write_transaction(conn, |conn| {
            let followers = db::themes::followers(conn, id)?;
            if db::themes::delete(conn, id)? == 0 {
                return Err(theme_not_found(id));
            }
            views_of(conn, &followers)
        })
    })
    .await?;
    for follower in &followers {
        state.profile_changed(follower);
    }
    log::info!(
        "admin {} deleted theme {id} ({} followers unlinked)",
        admin.0.user.id,
        followers.len()
    );
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/admin/stats` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Registered users, banned ones included.
    pub users: i64,
    pub banned_users: i64,
    pub admins: i64,
    pub themes: i64,
    /// Live (unexpired) login sessions.
    pub sessions: i64,
    /// Chat messages stored.
    pub messages: i64,
    /// Calls logged, in any state.
    pub calls: i64,
    /// Users with at least one live WebSocket connection (on any node).
    pub online_users: i64,
    /// Open WebSocket connections (on every node: see docs/scale-out.md).
    pub ws_connections: i64,
    /// Rooms with at least one member right now (with several nodes, on any node: a room
    /// with members on two nodes counts once).
    pub live_rooms: i64,
    /// Calls ringing or in progress right now (on every node).
    pub live_calls: i64,
}

/// Counts of what the server holds.
#[utoipa::path(
    get,
    path = "/api/admin/stats",
    tag = "admin",
    responses(
        (status = 200, body = Stats),
        AdminDenied,
    )
)]
#[get("/stats")]
pub async fn stats(state: web::Data<AppState>, _admin: Admin) -> ApiResult<web::Json<Stats>> {
    let online_users = state
        .realtime
        .presence
        .send(crate::realtime::presence::Statuses)
        .await
        .map_err(|_| ApiError::Unavailable("presence is not answering".to_owned()))?
        .len();
    let (ws_connections, live_rooms, live_calls) = match &state.realtime.broker {
        // Several nodes: every node's counts.
        Some(broker) => broker.cluster_gauges().await,
        None => state.realtime.metrics.gauges(),
    };
    let stats = db::run(&state.pool, move |conn| {
        let (users, banned_users, admins) = db::users::counts(conn)?;
        Ok(Stats {
            users,
            banned_users,
            admins,
            themes: db::themes::count(conn)?,
            sessions: db::sessions::count_live(conn)?,
            messages: db::messages::count(conn)?,
            calls: db::calls::count(conn)?,
            online_users: i64::try_from(online_users).unwrap_or(i64::MAX),
            ws_connections,
            live_rooms,
            live_calls,
        })
    })
    .await?;
    Ok(web::Json(stats))
}
