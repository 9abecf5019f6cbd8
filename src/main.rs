//! `tertulia`: see [`tertulia::cli`] for the commands.

use clap::Parser;

/// jemalloc leaves the untouched pages of the HTTP/1 dispatcher's two 8 KiB buffers out of
/// RSS and packs the rest tighter than glibc's malloc: about 1.4 KiB less per idle WebSocket
/// connection (docs/benchmarks.md, "Idle memory with actix-ws"). Its settings are built in
/// from `.cargo/config.toml`.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
