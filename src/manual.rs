//! `hoist completions SHELL` and `hoist man [COMMAND]...`: shell completions and manual pages
//! generated from the clap definitions of `cli` (clap_complete, clap_mangen), so they never
//! drift from the flags. Both write to stdout and touch no store:
//!
//! ```text
//! hoist completions bash > ~/.local/share/bash-completion/completions/hoist
//! hoist completions zsh  > "${fpath[1]}/_hoist"
//! hoist completions fish > ~/.config/fish/completions/hoist.fish
//! hoist man | man -l -            # hoist(1): every command in one list
//! hoist man envs target | man -l -  # hoist-envs-target(1)
//! ```

use crate::cli::Cli;
use crate::output::write_stdout;
use clap::CommandFactory;
use hoist_control::Error;

/// The completion script of `shell`, as clap_complete writes it.
pub fn completions(shell: clap_complete::Shell) {
    let mut cli = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, "hoist", &mut script);
    write_stdout(&script);
}

/// The roff page of `hoist` or of one of its (nested) commands.
pub fn man(path: &[String]) -> Result<(), Error> {
    // Built as clap builds it to parse: subcommands know their full name (`hoist-envs-target`)
    // and carry the global flags.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    for name in path {
        command = command.find_subcommand(name).cloned().ok_or_else(|| {
            Error::rejected(format!(
                "invalid man COMMAND {name:?}: must be a command of `hoist --help`"
            ))
        })?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .expect("rendering into memory cannot fail");
    write_stdout(&page);
    Ok(())
}
