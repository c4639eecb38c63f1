//! `hoist completions SHELL` and `hoist man`: generated from the clap definitions, valid for
//! their consumers, naming the real commands, and touching no store.

use crate::harness::Hoist;
use std::process::Command;

/// The commands every generated document must name.
const COMMANDS: [&str; 6] = ["deploy", "promote", "rollback", "status", "audit", "envs"];

pub fn completions_are_valid_scripts_naming_every_command() {
    let h = Hoist::sled();
    let bash = h.ok(&["completions", "bash"]);
    // `bash -n`: bash parses the script without running it.
    let script = h.dir.path().join("hoist.bash");
    std::fs::write(&script, &bash).expect("the script is written");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        checked.status.success(),
        "bash -n refused the completion script: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(bash.contains("complete -F"), "a bash completion function");
    for command in COMMANDS {
        assert!(bash.contains(command), "bash completions name {command}");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = h.ok(&["completions", shell]);
        assert!(
            script.contains("deploy") && script.contains("rollback"),
            "{shell} completions name deploy and rollback:\n{script}"
        );
    }
    assert!(h.ok(&["completions", "zsh"]).starts_with("#compdef hoist"));
    h.fails(&["completions", "tcsh"], 2, &["tcsh"]);
    assert!(!h.data_dir().exists(), "completions created a store");
}

pub fn man_pages_are_roff_naming_the_commands() {
    let h = Hoist::sled();
    let page = h.ok(&["man"]);
    assert!(
        page.contains(".TH hoist 1"),
        "a roff page titled hoist(1):\n{page}"
    );
    for command in COMMANDS {
        // roff escapes the dash: `hoist\-deploy(1)`.
        assert!(
            page.contains(&format!("hoist\\-{command}(1)")),
            "hoist(1) lists {command}"
        );
    }
    let target = h.ok(&["man", "envs", "target"]);
    assert!(target.contains(".TH hoist-envs-target 1"));
    for flag in ["kube", "manifests", "exec", "none", "store"] {
        assert!(
            target.contains(&format!("\\fB\\-\\-{flag}\\fR")),
            "hoist-envs-target(1) documents --{flag}"
        );
    }
    h.fails(&["man", "deploi"], 1, &["man COMMAND", "deploi"]);
    assert!(!h.data_dir().exists(), "man created a store");
}
