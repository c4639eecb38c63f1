//! `hoist`: the command line. Parses flags, calls `hoist_control`, prints; errors are rendered here,
//! once, as one line on stderr with the exit code of CLI.md.

// Everything printed goes through `output` (closed pipes, escaping): no stray print macro.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod manual;
mod output;
mod remote;
mod serve;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    output::respect_no_color();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    // `serve` runs the reconciler and the HTTP API side by side: every core works for it. A
    // command is one call: one thread.
    let runtime = match cli.command {
        cli::Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .expect("a tokio runtime");
    let result = runtime.block_on(commands::run(cli));
    output::flush_stdout();
    match (result, output::stdout_closed()) {
        (Err(e), _) => {
            output::error_line(e.message());
            ExitCode::from(exit_code(e.kind()))
        }
        // Writing failed for another reason than a reader that left: the output is incomplete.
        (Ok(()), Some(output::StdoutClosed::Failed(message))) => {
            output::error_line(message);
            ExitCode::FAILURE
        }
        (Ok(()), _) => ExitCode::SUCCESS,
    }
}

/// CLI.md's exit code of each kind of failure (2, a usage error, is clap's).
fn exit_code(kind: hoist_control::ErrorKind) -> u8 {
    use hoist_control::ErrorKind::*;
    match kind {
        Rejected | NotFound => 1,
        Conflict => 3,
        // A damaged store, like an unreachable one, is a backend that cannot serve the command.
        Unavailable | Corrupt => 4,
        Denied | Unauthenticated => 5,
    }
}

/// clap's answer when the command line does not parse: `--help` and `--version` print as clap
/// prints them (exit 0); any usage error is one line on stderr, exit 2.
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // A closed stdout (`hoist --help | head -1`) changes nothing: the help was asked for.
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    output::error_line(&usage_line(&e));
    ExitCode::from(2)
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
