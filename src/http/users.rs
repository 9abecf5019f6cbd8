//! How users are shown to clients: never with a password hash.

use diesel::SqliteConnection;
use serde::Serialize;

use crate::db::{
    self,
    models::{Capabilities, Role, User},
};

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
        }
    }

    /// Loads the themes of one user and builds their view.
    pub fn load(conn: &mut SqliteConnection, user: &User) -> diesel::QueryResult<Self> {
        let mut themes = db::users::themes_of(conn, &[user.id])?;
        Ok(UserView::new(
            user,
            themes.remove(&user.id).unwrap_or_default(),
        ))
    }

    /// Loads the themes of many users at once and builds their views, in order.
    pub fn load_many(
        conn: &mut SqliteConnection,
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
