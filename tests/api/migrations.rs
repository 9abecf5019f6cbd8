//! The migrations work with the diesel CLI too (`migration run`, `redo --all`, `revert`), and
//! `src/db/schema.rs` is exactly what `diesel print-schema` prints for them: on SQLite with
//! `diesel.toml` and `migrations/sqlite/`, and with `TERTULIA_TEST_DATABASE=postgres` on
//! PostgreSQL with `diesel-postgres.toml` and `migrations/postgres/` (which prints `Int8` for
//! what SQLite calls `BigInt`, the same type; nothing else may differ).
//!
//! Every CLI run happens in a temporary copy of `migrations/` and `diesel.toml`:
//! `diesel migration run` rewrites the schema file `diesel.toml` names, which must never
//! happen to the repository's. Without the CLI these tests print a note and pass, unless
//! `TERTULIA_REQUIRE_DIESEL_CLI=1` (the README's test command sets it).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use diesel::{sql_query, sql_types::Text, QueryableByName, RunQueryDsl};
use tempfile::TempDir;

use crate::helpers::{
    create_pg_database, drop_test_database, on_postgres, spawn_app_with, test_pg_server,
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The diesel CLI: on `PATH`, or where `cargo install` puts it.
fn diesel_cli() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("diesel"));
    let in_cargo_home =
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin/diesel"));
    let found = on_path.chain(in_cargo_home).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("TERTULIA_REQUIRE_DIESEL_CLI").as_deref() != Ok("1"),
            "TERTULIA_REQUIRE_DIESEL_CLI=1 but no diesel CLI found: install it with \
             `cargo install diesel_cli --no-default-features --features \
             sqlite-bundled,postgres-bundled`"
        );
        eprintln!("note: diesel CLI not found; skipping the diesel CLI checks");
    }
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A scratch project: the migrations, `diesel.toml`, a stub `Cargo.toml` (how the CLI finds
/// its project root) and an empty `src/db/` for the schema file it writes.
struct Scratch {
    dir: TempDir,
    diesel: PathBuf,
    /// The scratch database: a file in `dir`, or a PostgreSQL database of the test server.
    db: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop_test_database(&self.db);
    }
}

impl Scratch {
    fn new(diesel: PathBuf) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &Path::new(ROOT).join("migrations"),
            &dir.path().join("migrations"),
        );
        for config in ["diesel.toml", "diesel-postgres.toml"] {
            std::fs::copy(Path::new(ROOT).join(config), dir.path().join(config)).unwrap();
        }
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"scratch\"\nversion = \"0.0.0\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("src/db")).unwrap();
        let db = match test_pg_server() {
            Some(server) => create_pg_database(&server),
            None => dir.path().join("cli.db").to_string_lossy().into_owned(),
        };
        Scratch { dir, diesel, db }
    }

    fn db(&self) -> String {
        self.db.clone()
    }

    /// Runs the CLI in the scratch project; returns stdout, panics with stderr on failure.
    fn diesel(&self, args: &[&str]) -> String {
        let mut command = Command::new(&self.diesel);
        if on_postgres() {
            command.args(["--config-file", "diesel-postgres.toml"]);
        }
        let out = command
            .args(args)
            .arg("--database-url")
            .arg(self.db())
            .current_dir(self.dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("DIESEL_CONFIG_FILE")
            .output()
            .expect("diesel runs");
        assert!(
            out.status.success(),
            "diesel {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// The names of the tables in the scratch database, sorted.
    fn tables(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let pool = tertulia::db::build_pool(&self.db(), 1).unwrap();
        let query = if on_postgres() {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY name"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name"
        };
        let names: Vec<Name> = sql_query(query).load(&mut pool.get().unwrap()).unwrap();
        names.into_iter().map(|n| n.name).collect()
    }
}

fn repo_schema() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("src/db/schema.rs")).unwrap()
}

const ALL_TABLES: [&str; 10] = [
    "__diesel_schema_migrations",
    "calls",
    "messages",
    "room_members",
    "rooms",
    "sessions",
    "theme_descriptions",
    "themes",
    "user_themes",
    "users",
];

#[test]
fn the_diesel_cli_runs_every_migration_and_redoes_them_all() {
    let Some(diesel) = diesel_cli() else { return };
    let scratch = Scratch::new(diesel);
    let before = repo_schema();

    scratch.diesel(&["migration", "run"]);
    assert_eq!(scratch.tables(), ALL_TABLES);
    // `migration run` rewrote the scratch copy's schema file, never the repository's.
    assert_eq!(repo_schema(), before);
    let written = std::fs::read_to_string(scratch.dir.path().join("src/db/schema.rs"));
    if on_postgres() {
        // diesel-postgres.toml names no schema file: PostgreSQL's type names would churn it.
        assert!(
            written.is_err(),
            "diesel rewrote a schema file from PostgreSQL"
        );
    } else {
        assert_eq!(
            written.unwrap(),
            before,
            "diesel migration run regenerated a different schema"
        );
    }

    // Every down.sql, then every up.sql again.
    scratch.diesel(&["migration", "redo", "--all"]);
    assert_eq!(scratch.tables(), ALL_TABLES);
    let listed = scratch.diesel(&["migration", "list"]);
    assert!(
        !listed.contains("[ ]"),
        "every migration is applied:\n{listed}"
    );

    // And every down.sql leaves nothing behind.
    scratch.diesel(&["migration", "revert", "--all"]);
    assert_eq!(scratch.tables(), ["__diesel_schema_migrations"]);
}

#[test]
fn the_schema_file_is_exactly_what_diesel_print_schema_prints() {
    let Some(diesel) = diesel_cli() else { return };
    let scratch = Scratch::new(diesel);
    scratch.diesel(&["migration", "run"]);
    let mut printed = scratch.diesel(&["print-schema"]);
    if on_postgres() {
        // PostgreSQL's name for the type SQLite's print-schema calls `BigInt`.
        printed = printed
            .replace("-> Int8", "-> BigInt")
            .replace("<Int8>", "<BigInt>");
    }
    assert!(
        printed == repo_schema(),
        "src/db/schema.rs differs from `diesel print-schema`; regenerate it:\n{printed}"
    );
}

#[actix_web::test]
async fn a_database_migrated_by_the_diesel_cli_is_up_to_date_for_the_server() {
    let Some(diesel) = diesel_cli() else { return };
    let scratch = Scratch::new(diesel);
    scratch.diesel(&["migration", "run"]);
    let db = scratch.db();
    // The server applies nothing more (it would fail on an existing table) and works.
    let app = spawn_app_with(|s| s.database_url = db.clone()).await;
    app.user_with("ana", &["Tecnologia"], &["text"]).await;
    let themes = app.get("/api/themes", None).await;
    assert_eq!(themes.body["themes"].as_array().unwrap().len(), 8);
}
