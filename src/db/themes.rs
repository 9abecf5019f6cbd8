//! Queries on `themes`.

use diesel::prelude::*;

use super::{
    models::Theme,
    schema::{themes, user_themes},
};

/// Every theme with how many users follow it, by name.
pub fn list_with_counts(conn: &mut SqliteConnection) -> QueryResult<Vec<(Theme, i64)>> {
    themes::table
        .left_join(user_themes::table)
        .group_by(themes::id)
        .select((
            Theme::as_select(),
            diesel::dsl::count(user_themes::user_id.nullable()),
        ))
        .order(themes::name)
        .load(conn)
}

/// Looks up themes by name (ignoring case); returns them and the names that matched nothing.
pub fn resolve_names(
    conn: &mut SqliteConnection,
    names: &[String],
) -> QueryResult<(Vec<Theme>, Vec<String>)> {
    let mut found = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        let theme = themes::table
            .filter(themes::name.eq(name.trim()))
            .select(Theme::as_select())
            .first(conn)
            .optional()?;
        match theme {
            Some(theme) if !found.iter().any(|t: &Theme| t.id == theme.id) => found.push(theme),
            Some(_) => {}
            None => unknown.push(name.clone()),
        }
    }
    Ok((found, unknown))
}
