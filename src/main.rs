//! `hoist`: the command line. Parses flags, calls the crates, prints; errors are rendered here,
//! once, as one line on stderr with the exit code of CLI.md.

// Everything printed goes through `output` (closed pipes, escaping): no stray print macro.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod admin;
mod backend;
mod bench;
mod cli;
mod commands;
mod envs;
mod error;
mod manual;
mod models;
mod output;
mod reconcile;
mod serve;
mod span;

use clap::Parser;

fn main() {
    output::respect_no_color();
    let cli = cli::Cli::try_parse().unwrap_or_else(|e| usage(e));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(commands::run(cli));
    output::flush_stdout();
    match (result, output::stdout_closed()) {
        (Err(e), _) => {
            output::error_line(e.message());
            std::process::exit(e.exit_code());
        }
        // Writing failed for another reason than a reader that left: the output is incomplete.
        (Ok(()), Some(output::StdoutClosed::Failed(message))) => {
            output::error_line(message);
            std::process::exit(1);
        }
        (Ok(()), _) => {}
    }
}

/// clap's answer when the command line does not parse: `--help` and `--version` print as clap
/// prints them (exit 0); any usage error is one line on stderr, exit 2.
fn usage(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // A closed stdout (`hoist --help | head -1`) changes nothing: the help was asked for.
        let _ = e.print();
        std::process::exit(0);
    }
    output::error_line(&usage_line(&e));
    std::process::exit(2);
}

/// clap's multi-line error as one line: its first sentence, and the usage it shows.
fn usage_line(e: &clap::Error) -> String {
    // `StyledStr`'s Display is plain text, never colour.
    let rendered = e.render().to_string();
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| format!(" (usage: {u}; see --help)"))
        .unwrap_or_default();
    let first = if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        "a subcommand is required".to_string()
    } else {
        // The first paragraph: the sentence, and what it lists on the lines under it.
        let sentence: Vec<&str> = rendered
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        let sentence = sentence.join(" ");
        sentence
            .strip_prefix("error: ")
            .unwrap_or(&sentence)
            .to_string()
    };
    format!("{first}{usage}")
}
