//! Themes: `GET /api/themes`, public so the registration form can offer them.

use actix_web::{get, web};
use serde::Serialize;

use crate::{
    db::{self, models::Theme},
    error::ApiResult,
    state::AppState,
};

/// Mounts `/api/themes`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_themes);
}

/// A theme as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ThemeView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// How many users follow it (banned ones included).
    pub followers: i64,
    /// Unix milliseconds (0 for the themes a fresh install ships with).
    pub created_at: i64,
}

impl ThemeView {
    /// Builds the view from a row and its follower count.
    pub fn new(theme: Theme, followers: i64) -> Self {
        ThemeView {
            id: theme.id,
            name: theme.name,
            description: theme.description,
            followers,
            created_at: theme.created_at,
        }
    }
}

/// `GET /api/themes` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ThemeList {
    /// By name.
    pub themes: Vec<ThemeView>,
}

/// Every theme with its description and how many users follow it, by name.
#[utoipa::path(
    get,
    path = "/api/themes",
    tag = "directory",
    security(()),
    responses((status = 200, body = ThemeList))
)]
#[get("/themes")]
pub(crate) async fn list_themes(state: web::Data<AppState>) -> ApiResult<web::Json<ThemeList>> {
    let themes = db::run(&state.pool, |conn| Ok(db::themes::list_with_counts(conn)?)).await?;
    Ok(web::Json(ThemeList {
        themes: themes
            .into_iter()
            .map(|(theme, followers)| ThemeView::new(theme, followers))
            .collect(),
    }))
}
