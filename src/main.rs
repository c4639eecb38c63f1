//! `hoist`: the command line. Parses flags, calls the crates, prints; errors are rendered here,
//! once, as one line on stderr with the exit code of CLI.md.

mod admin;
mod backend;
mod bench;
mod cli;
mod commands;
mod envs;
mod error;
mod models;
mod nats_work;
mod output;
mod reconcile;
mod serve;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(commands::run(cli)) {
        eprintln!("hoist: {}", e.message());
        std::process::exit(e.exit_code());
    }
}
