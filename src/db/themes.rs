//! Queries on `themes`.

use diesel::prelude::*;

use super::{
    models::{NewTheme, Theme},
    on_backend,
    schema::{theme_descriptions, themes, user_themes},
    DbConnection,
};

/// The languages a theme can be described in: those the browser app speaks.
pub const DESCRIPTION_LANGUAGES: [&str; 2] = ["en", "pt-BR"];

/// The per-language descriptions of these themes, as `(theme_id, language, description)`.
pub(crate) fn descriptions_of(
    conn: &mut DbConnection,
    theme_ids: &[i64],
) -> QueryResult<Vec<(i64, String, String)>> {
    theme_descriptions::table
        .filter(theme_descriptions::theme_id.eq_any(theme_ids))
        .select((
            theme_descriptions::theme_id,
            theme_descriptions::language,
            theme_descriptions::description,
        ))
        .order((theme_descriptions::theme_id, theme_descriptions::language))
        .load(conn)
}

/// Sets a theme's description in each given language; an empty text removes that
/// language's description (the theme's neutral one shows instead).
pub(crate) fn set_descriptions(
    conn: &mut DbConnection,
    theme_id: i64,
    descriptions: &[(String, String)],
) -> QueryResult<()> {
    for (language, description) in descriptions {
        let row = theme_descriptions::table
            .filter(theme_descriptions::theme_id.eq(theme_id))
            .filter(theme_descriptions::language.eq(language));
        if description.is_empty() {
            diesel::delete(row).execute(conn)?;
        } else {
            let row = (
                theme_descriptions::theme_id.eq(theme_id),
                theme_descriptions::language.eq(language),
                theme_descriptions::description.eq(description),
            );
            // `ON CONFLICT`, which Diesel's multi-backend type cannot build.
            on_backend!(conn, c => diesel::insert_into(theme_descriptions::table)
                .values(row)
                .on_conflict((theme_descriptions::theme_id, theme_descriptions::language))
                .do_update()
                .set(theme_descriptions::description.eq(description))
                .execute(c))?;
        }
    }
    Ok(())
}

/// Every theme with how many users follow it, by name.
pub(crate) fn list_with_counts(conn: &mut DbConnection) -> QueryResult<Vec<(Theme, i64)>> {
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
pub(crate) fn resolve_names(
    conn: &mut DbConnection,
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

/// One theme and how many users follow it.
pub(crate) fn find_with_count(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<Option<(Theme, i64)>> {
    themes::table
        .left_join(user_themes::table)
        .filter(themes::id.eq(id))
        .group_by(themes::id)
        .select((
            Theme::as_select(),
            diesel::dsl::count(user_themes::user_id.nullable()),
        ))
        .first(conn)
        .optional()
}

/// Adds a theme (a taken name, in any case, is a unique violation).
pub fn create(conn: &mut DbConnection, new: &NewTheme<'_>) -> QueryResult<Theme> {
    on_backend!(conn, c => diesel::insert_into(themes::table)
        .values(new)
        .returning(Theme::as_returning())
        .get_result(c))
}

/// What an admin may change about a theme; `None` leaves a field as it is.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = themes)]
pub struct ThemeChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
}

/// Renames and/or redescribes a theme (at least one change is required); returns how many
/// rows changed (0: no such theme). A taken name is a unique violation.
pub fn update(conn: &mut DbConnection, id: i64, changes: &ThemeChanges<'_>) -> QueryResult<usize> {
    diesel::update(themes::table.find(id))
        .set(changes)
        .execute(conn)
}

/// Deletes a theme; its followers simply stop following it (`ON DELETE CASCADE` on
/// `user_themes`). Returns how many rows went (0: no such theme).
pub fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(themes::table.find(id)).execute(conn)
}

/// The ids of the users who follow a theme.
pub fn followers(conn: &mut DbConnection, id: i64) -> QueryResult<Vec<i64>> {
    user_themes::table
        .filter(user_themes::theme_id.eq(id))
        .select(user_themes::user_id)
        .load(conn)
}

/// How many themes there are.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    themes::table.count().get_result(conn)
}
