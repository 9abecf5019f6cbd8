//! How users are shown to clients (never with a password hash), and the lobby directory,
//! `GET /api/users`.

use crate::db::DbConnection;
use actix_web::{get, web};
use serde::{Deserialize, Serialize};

use crate::{
    db::{
        self,
        models::{Capabilities, Capability, Role, User},
        users::DirectoryFilter,
    },
    error::{documented::NotLoggedIn, ApiError, ApiResult, ErrorBody},
    http::auth::Authenticated,
    http::state::AppState,
    realtime::{presence::Statuses, protocol::Status},
};

/// Users per page when the client does not say.
pub(crate) const DEFAULT_PER_PAGE: u32 = 50;
/// Most users one page may hold.
pub const MAX_PER_PAGE: u32 = 200;

/// Mounts `/api/users`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_users);
}

/// A user as every API answer shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub nickname: String,
    pub capabilities: Capabilities,
    /// Names of the themes the user follows, sorted.
    pub themes: Vec<String>,
    pub role: Role,
    pub banned: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; null when never seen online.
    pub last_seen_at: Option<i64>,
    /// Live presence (online, busy, away, in_call, offline); only in directory listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl UserView {
    /// Builds the view from a row and the user's theme names.
    pub fn new(user: &User, themes: Vec<String>) -> Self {
        UserView {
            id: user.id,
            nickname: user.nickname.clone(),
            capabilities: user.capabilities(),
            themes,
            role: Role::parse(&user.role),
            banned: user.banned,
            created_at: user.created_at,
            last_seen_at: user.last_seen_at,
            status: None,
        }
    }

    /// Loads the themes of one user and builds their view.
    pub fn load(conn: &mut DbConnection, user: &User) -> diesel::QueryResult<Self> {
        let mut themes = db::users::themes_of(conn, &[user.id])?;
        Ok(UserView::new(
            user,
            themes.remove(&user.id).unwrap_or_default(),
        ))
    }

    /// Loads the themes of many users at once and builds their views, in order.
    pub(crate) fn load_many(
        conn: &mut DbConnection,
        users: &[User],
    ) -> diesel::QueryResult<Vec<Self>> {
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let mut themes = db::users::themes_of(conn, &ids)?;
        Ok(users
            .iter()
            .map(|u| UserView::new(u, themes.remove(&u.id).unwrap_or_default()))
            .collect())
    }
}

/// `GET /api/users` query: filters and the page wanted.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DirectoryQuery {
    /// Only followers of this theme (its name, any case).
    pub theme: Option<String>,
    /// Only users who can do this.
    pub capability: Option<Capability>,
    /// `true`: only users with a live connection; `false`: only those without.
    pub online: Option<bool>,
    /// Only users whose nickname contains this text (letters in any case), 1-32
    /// characters: how the lobby searches everyone (it is not sent everyone's presence).
    #[param(min_length = 1, max_length = 32)]
    pub q: Option<String>,
    /// 1-based page number; default 1.
    // Documented as int64: utoipa calls a u32 `int32`, which would put half its range out.
    #[param(minimum = 1, maximum = 4294967295_i64, value_type = Option<i64>)]
    pub page: Option<u32>,
    /// Users per page, 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u32>,
}

impl DirectoryQuery {
    /// The page number and size, checked.
    fn paging(&self) -> ApiResult<(u32, u32)> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(ApiError::BadRequest("page starts at 1".to_owned()));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::BadRequest(format!(
                "per_page must be 1 to {MAX_PER_PAGE}"
            )));
        }
        Ok((page, per_page))
    }
}

/// One page of a user list, and how many users match in all.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserView>,
    pub page: u32,
    pub per_page: u32,
    /// Users matching the filters, over all pages.
    pub total: i64,
}

/// Loads one page of users matching `query` and `filter` (the theme name is resolved here;
/// an unknown one is a 400).
pub(crate) async fn load_page(
    state: &AppState,
    query: DirectoryQuery,
    mut filter: DirectoryFilter,
) -> ApiResult<UserPage> {
    let (page, per_page) = query.paging()?;
    filter.capability = filter.capability.or(query.capability);
    if let Some(q) = &query.q {
        let chars = q.chars().count();
        if chars == 0 || chars > 32 {
            return Err(ApiError::BadRequest(
                "q must be 1 to 32 characters".to_owned(),
            ));
        }
        filter.nickname_contains = Some(q.clone());
    }
    // Presence is the one owner of who is online: ask it once for this page.
    let statuses = state
        .realtime
        .presence
        .send(Statuses)
        .await
        .map_err(|_| ApiError::Unavailable("presence is not answering".to_owned()))?;
    match query.online {
        Some(true) => filter.only_ids = Some(statuses.keys().copied().collect()),
        Some(false) => filter.except_ids = Some(statuses.keys().copied().collect()),
        None => {}
    }
    let offset = i64::from(page - 1) * i64::from(per_page);
    let theme = query.theme;
    let (users, total) = db::run(&state.pool, move |conn| {
        if let Some(name) = theme {
            let (found, _) = db::themes::resolve_names(conn, std::slice::from_ref(&name))?;
            let theme = found
                .first()
                .ok_or_else(|| ApiError::BadRequest(format!("unknown theme '{name}'")))?;
            filter.theme_id = Some(theme.id);
        }
        let (users, total) = db::users::directory(conn, &filter, offset, i64::from(per_page))?;
        Ok((UserView::load_many(conn, &users)?, total))
    })
    .await?;
    let users = users
        .into_iter()
        .map(|mut u| {
            u.status = Some(statuses.get(&u.id).copied().unwrap_or(Status::Offline));
            u
        })
        .collect();
    Ok(UserPage {
        users,
        page,
        per_page,
        total,
    })
}

/// The lobby directory: users with their themes and capabilities, by nickname, filterable
/// and paginated. Banned users are left out, except for admins.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "directory",
    params(DirectoryQuery),
    responses(
        (status = 200, body = UserPage),
        (status = 400, body = ErrorBody, description = "unknown theme or capability, page or per_page out of range"),
        NotLoggedIn,
    )
)]
#[get("/users")]
pub(crate) async fn list_users(
    state: web::Data<AppState>,
    who: Authenticated,
    query: web::Query<DirectoryQuery>,
) -> ApiResult<web::Json<UserPage>> {
    let filter = DirectoryFilter {
        // Admins see banned users too (flagged `banned`), so they can find and unban them.
        banned: (!who.user.is_admin()).then_some(false),
        ..DirectoryFilter::default()
    };
    let page = load_page(&state, query.into_inner(), filter).await?;
    Ok(web::Json(page))
}
