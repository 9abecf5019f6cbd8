//! The `tertulia` command line: `serve` (the default), `migrate`, `migrate-data`, `admin create`.

use std::io::{self, BufRead, IsTerminal};

use clap::{Parser, Subcommand};

use crate::{
    auth,
    config::Settings,
    db::{self, models::NewUser, models::Role},
    startup::{self, Application},
};

/// Tertulia: a live lobby, text chat and WebRTC video calls for people who share interests.
#[derive(Debug, Parser)]
#[command(name = "tertulia", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings for `serve` (also accepted here, since `serve` is the default).
    #[command(flatten)]
    pub settings: Settings,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the WebSocket endpoint and the browser app (the default).
    Serve {
        // Boxed: the settings dwarf the other variants.
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Apply pending database migrations, then exit.
    Migrate {
        /// SQLite database file, or a `postgres://` URL.
        #[arg(long, env = "DATABASE_URL", default_value = "tertulia.db")]
        database_url: String,
    },
    /// Copy a SQLite community (users with their password hashes, themes, follows, sessions,
    /// rooms, messages, calls; ids kept) into an empty PostgreSQL database, in one
    /// transaction, and print how many rows of each were copied.
    MigrateData {
        /// The SQLite database file to copy from (left unchanged, apart from pending
        /// migrations).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database to copy into (`postgres://user@host/db`): migrated first,
        /// and refused unless empty.
        #[arg(long)]
        to: String,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `tertulia admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account, or make an existing account admin. The password is read from
    /// standard input (or prompted for on a terminal), never from the command line.
    Create {
        #[arg(long)]
        nickname: String,
        /// SQLite database file, or a `postgres://` URL.
        #[arg(long, env = "DATABASE_URL", default_value = "tertulia.db")]
        database_url: String,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        None => serve(cli.settings).await,
        Some(Command::Serve { settings }) => serve(*settings).await,
        Some(Command::Migrate { database_url }) => {
            let settings = Settings {
                database_url,
                ..Settings::default()
            };
            startup::open_database(&settings).map_err(|e| e.to_string())?;
            println!("database {} is up to date", settings.database_url);
            Ok(())
        }
        Some(Command::MigrateData { from, to }) => {
            let copied = db::migrate_data::copy(&from, &to)?;
            println!("copied {from} into {}: {copied}", db::redact_url(&to));
            Ok(())
        }
        Some(Command::Admin {
            command:
                AdminCommand::Create {
                    nickname,
                    database_url,
                },
        }) => create_admin(&nickname, &database_url),
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings.clone())
        .await
        .map_err(|e| e.to_string())?;
    let scheme = if settings.tls_enabled() {
        "https"
    } else {
        "http"
    };
    log::info!(
        "Tertulia serving {scheme}://{}:{}/",
        settings.bind.ip(),
        app.port()
    );
    if let Some(port) = app.redirect_port() {
        log::info!(
            "plain HTTP on port {port} redirects to https (port {})",
            app.port()
        );
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

/// Reads the password: a prompt on a terminal, otherwise the first line of standard input.
fn read_password() -> Result<String, String> {
    if io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".to_owned());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn create_admin(nickname: &str, database_url: &str) -> Result<(), String> {
    auth::validate_nickname(nickname)?;
    let settings = Settings {
        database_url: database_url.to_owned(),
        ..Settings::default()
    };
    let pool = startup::open_database(&settings).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    if let Some(user) =
        db::users::find_by_nickname(&mut conn, nickname).map_err(|e| e.to_string())?
    {
        db::users::set_role(&mut conn, user.id, Role::Admin).map_err(|e| e.to_string())?;
        println!("{} is now an admin (password unchanged)", user.nickname);
        return Ok(());
    }
    let password = read_password()?;
    auth::validate_password(&password, nickname)?;
    let hash = auth::hash_password(&password)?;
    let user = db::users::create(
        &mut conn,
        &NewUser {
            nickname,
            password_hash: &hash,
            can_video: true,
            can_audio: true,
            can_text: true,
            role: Role::Admin.as_str(),
            created_at: db::now_ms(),
        },
        &[],
    )
    .map_err(|e| e.to_string())?;
    println!("created admin {} (id {})", user.nickname, user.id);
    Ok(())
}
