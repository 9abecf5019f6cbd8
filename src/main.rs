//! `tertulia`: see [`tertulia::cli`] for the commands.

use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match tertulia::cli::run(tertulia::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tertulia: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
