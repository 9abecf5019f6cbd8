//! Themes: `GET /api/themes`, public so the registration form can offer them.

use std::collections::BTreeMap;

use actix_web::{get, web};
use serde::Serialize;

use crate::{
    db::{self, models::Theme},
    error::ApiResult,
    http::state::AppState,
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
    /// The neutral description, shown in a language that has none of its own.
    pub description: String,
    /// The description in each language that has one (`en`, `pt-BR`): a client shows the
    /// one in its language, else `description`.
    #[schema(example = json!({"en": "Book clubs, fiction, non-fiction and poetry.", "pt-BR": "Clubes de leitura, ficção, não ficção e poesia."}))]
    pub descriptions: BTreeMap<String, String>,
    /// How many users follow it (banned ones included).
    pub followers: i64,
    /// Unix milliseconds (0 for the themes a fresh install ships with).
    pub created_at: i64,
}

impl ThemeView {
    /// Builds the view from a row, its follower count and its per-language descriptions
    /// (`(theme_id, language, description)` rows: those of other themes are ignored).
    pub fn new(theme: Theme, followers: i64, descriptions: &[(i64, String, String)]) -> Self {
        ThemeView {
            descriptions: descriptions
                .iter()
                .filter(|(id, _, _)| *id == theme.id)
                .map(|(_, language, text)| (language.clone(), text.clone()))
                .collect(),
            id: theme.id,
            name: theme.name,
            description: theme.description,
            followers,
            created_at: theme.created_at,
        }
    }

    /// Loads one theme's view (None: no such theme).
    pub(crate) fn load(
        conn: &mut crate::db::DbConnection,
        id: i64,
    ) -> diesel::QueryResult<Option<Self>> {
        let Some((theme, followers)) = db::themes::find_with_count(conn, id)? else {
            return Ok(None);
        };
        let descriptions = db::themes::descriptions_of(conn, &[id])?;
        Ok(Some(ThemeView::new(theme, followers, &descriptions)))
    }
}

/// `GET /api/themes` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ThemeList {
    /// By name.
    pub themes: Vec<ThemeView>,
}

/// Every theme with its descriptions (neutral and per language) and how many users follow
/// it, by name.
#[utoipa::path(
    get,
    path = "/api/themes",
    tag = "directory",
    security(()),
    responses((status = 200, body = ThemeList))
)]
#[get("/themes")]
pub(crate) async fn list_themes(state: web::Data<AppState>) -> ApiResult<web::Json<ThemeList>> {
    let themes = db::run(&state.pool, |conn| {
        let themes = db::themes::list_with_counts(conn)?;
        let ids: Vec<i64> = themes.iter().map(|(theme, _)| theme.id).collect();
        let descriptions = db::themes::descriptions_of(conn, &ids)?;
        Ok(themes
            .into_iter()
            .map(|(theme, followers)| ThemeView::new(theme, followers, &descriptions))
            .collect())
    })
    .await?;
    Ok(web::Json(ThemeList { themes }))
}
