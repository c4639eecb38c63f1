//! What reaches the terminal: any input renders without a panic, a closed stdout ends quietly,
//! usage errors are one line, read-only commands never create a store, and free text from the
//! log (reasons, notes, commits, config values) is shown as data, never as terminal control.

use crate::harness::{assert_success, image, Hoist};
use std::process::Stdio;

/// Free text that tries everything: an OSC 8 hyperlink, a colour, a forged `hoist:` line after a
/// newline, a carriage return that rewrites the line, DEL, a C1 CSI and a right-to-left override.
const HOSTILE: &str =
    "\u{1b}]8;;http://evil.example\u{7}click\u{1b}]8;;\u{7}\u{1b}[31mred\nhoist: forged\rover\u{7f}\u{9b}2J\u{202e}end";

/// Whether `bytes` hold a control character other than the line ends between lines, or an
/// invisible reordering mark.
fn has_control(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .chars()
        .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}'))
}

fn app_with_history(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", 'a'));
    h.ok(&["config", "set", "api", "--env", "staging", "A=1"]);
    h.deploy("api", "staging", &image("api", 'b'));
}

/// A 70,000-character lock reason (over the 65,535 a padded format can take) and `status`,
/// `audit`, `apps show` still answer, one line per row; `--json` keeps the whole reason.
pub fn huge_reason_then_status_works(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    // The longest reason the limits allow (a 70,000-character one broke `status` for everyone
    // before both the limit and the table crate); the renderers' proptests take any length.
    let reason = "r".repeat(1024);
    h.ok(&["lock", "api", "--env", "production", "--reason", &reason]);
    let status = h.ok(&["status", "api"]);
    assert_eq!(status.lines().count(), 3, "a header and two envs");
    let production = status.lines().nth(2).expect("the production row");
    assert!(production.contains(&reason), "{}", &production[..200]);
    let json = h.json(&["status", "api"]);
    assert_eq!(json["envs"]["production"]["lock_reason"], reason.as_str());
    assert_eq!(h.ok(&["audit"]).lines().count(), 3);
    h.ok(&["apps", "show", "api"]);
}

/// Every command whose reader goes away before it writes exits 0 with nothing on stderr.
pub fn closed_stdout_ends_quietly(h: &Hoist) {
    app_with_history(h);
    let commands: &[&[&str]] = &[
        &["audit"],
        &["audit", "--json"],
        &["audit", "verify"],
        &["events"],
        &["events", "export"],
        &["releases", "api", "--env", "staging"],
        &["releases", "api", "--env", "staging", "--json"],
        &["status", "api"],
        &["status", "api", "--json"],
        &["apps", "list"],
        &["apps", "show", "api"],
        &["config", "get", "api", "--env", "staging"],
        &["diff", "api", "--env", "staging", "1", "3"],
        &["config", "set", "api", "--env", "staging", "B=2"],
        &["--help"],
    ];
    for args in commands {
        let mut child = h
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hoist runs");
        // The reader is gone before hoist writes its first byte: every write fails with EPIPE.
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("hoist finishes");
        assert_eq!(
            output.status.code(),
            Some(0),
            "hoist {args:?} on a closed stdout: stderr {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stderr.is_empty(),
            "hoist {args:?} on a closed stdout printed on stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // `hoist events | head -1`: the reader takes one line, then leaves while hoist still writes
    // (the events hold far more than a pipe buffers: each release carries its whole config).
    for batch in 0..4 {
        let pairs: Vec<String> = (0..100)
            .map(|k| format!("K{batch}_{k}={}", "v".repeat(300)))
            .collect();
        let mut args = vec!["config", "set", "api", "--env", "production"];
        args.extend(pairs.iter().map(String::as_str));
        h.ok(&args);
    }
    let mut child = h
        .command(&["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hoist runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("a first line");
    assert!(first.starts_with('{'), "{first}");
    drop(stdout);
    let output = child.wait_with_output().expect("hoist finishes");
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());

    // A stdout that fails otherwise (a full disk) is not a reader that left: a backup that could
    // not be written must not look done.
    for args in [
        &["events", "export"][..],
        &["status", "api"],
        &["audit", "--json"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full (Linux)");
        let output = h.command(args).stdout(full).output().expect("hoist runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "hoist {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("hoist: stdout: "), "{stderr}");
    }
}

/// clap's usage errors are one line on stderr, exit 2; `--help` and `--version` still print.
pub fn usage_errors_are_one_line(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.fails(&["frobnicate"], 2, &["frobnicate", "usage: hoist"]);
    h.fails(&["status"], 2, &["<APP>", "usage: hoist status"]);
    h.fails(&["apps"], 2, &["subcommand", "usage: hoist apps"]);
    h.fails(&["status", "api", "--bogus"], 2, &["--bogus"]);
    for limit in ["0", "-1", "abc", "+3", ""] {
        let flag = format!("--limit={limit}");
        h.fails(
            &["releases", "api", "--env", "staging", &flag],
            2,
            &["--limit", "at least 1"],
        );
        h.fails(&["audit", &flag], 2, &["--limit", "at least 1"]);
    }
    let help = h.run(&["--help"]);
    assert_success(&["--help"], &help);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: hoist"));
    assert!(help.stderr.is_empty());
    let version = h.run(&["--version"]);
    assert_success(&["--version"], &version);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("hoist "));
    let sub_help = h.run(&["releases", "--help"]);
    assert_success(&["releases", "--help"], &sub_help);
}

/// `--limit 1` answers with one release; versions with a sign are not versions.
pub fn limits_and_signed_versions(h: &Hoist) {
    app_with_history(h);
    let one = h.json(&["releases", "api", "--env", "staging", "--limit", "1"]);
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["version"], 3);
    let human = h.ok(&["releases", "api", "--env", "staging", "--limit", "1"]);
    assert_eq!(human.lines().count(), 2, "{human}");
    for to in ["+2", "v+2", "+v2", "-1", " 2"] {
        h.fails(
            &["rollback", "api", "--env", "staging", &format!("--to={to}")],
            1,
            &["version", to],
        );
    }
    h.fails(
        &["diff", "api", "--env", "staging", "+1", "2"],
        1,
        &["version", "+1"],
    );
    h.ok(&["rollback", "api", "--env", "staging", "--to", "v2"]);
}

/// A read-only command at a directory that holds no store exits 4 naming it and creates
/// nothing; a command that writes creates the store.
pub fn read_only_commands_never_create_a_store() {
    let h = Hoist::sled();
    let dir = h.data_dir().display().to_string();
    let reads: &[&[&str]] = &[
        &["status", "api"],
        &["status", "api", "--at", "1d"],
        &["releases", "api", "--env", "staging"],
        &["audit"],
        &["audit", "verify"],
        &["apps", "list"],
        &["apps", "show", "api"],
        &["config", "get", "api", "--env", "staging"],
        &["diff", "api", "--env", "staging", "1", "2"],
        &["events"],
        &["events", "export"],
        &["status", "api", "--json"],
    ];
    for args in reads {
        h.fails(args, 4, &["no hoist store at", &dir]);
        assert!(
            !h.data_dir().exists(),
            "hoist {args:?} created {dir} reading it"
        );
    }
    // An existing directory that is not a store is not one either.
    std::fs::create_dir_all(h.data_dir()).expect("mkdir");
    let output = h.run(&["apps", "list"]);
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("hoist: no hoist store at") && stderr.lines().count() == 1);
    assert_eq!(
        std::fs::read_dir(h.data_dir()).expect("dir").count(),
        0,
        "nothing written into it"
    );
    h.ok(&["apps", "create", "api"]);
    assert!(h.ok(&["apps", "list"]).contains("api"));
}

/// Hostile free text in every field reaches stdout and stderr escaped: no control character,
/// no extra line, no forged `hoist:` line; `--json` keeps it exactly.
pub fn free_text_is_data_not_terminal_control(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    let img = image("api", 'c');
    let printed = h.ok(&[
        "builds", "register", "api", "--image", &img, "--commit", HOSTILE, "--note", HOSTILE,
    ]);
    assert!(!has_control(printed.as_bytes()));
    let value = format!("A={HOSTILE}\nDATABASE_URL=postgres://evil");
    let printed = h.ok(&[
        "config", "set", "api", "--env", "staging", &value, "B=plain",
    ]);
    assert!(!has_control(printed.as_bytes()), "{printed:?}");
    h.ok(&["config", "set", "api", "--env", "staging", "A=plain"]);
    let printed = h.ok(&["lock", "api", "--env", "staging", "--reason", HOSTILE]);
    assert!(!has_control(printed.as_bytes()), "{printed:?}");
    assert_eq!(printed.lines().count(), 1, "{printed:?}");

    let config = h.ok(&["config", "get", "api", "--env", "staging"]);
    assert_eq!(config, "A=plain\nB=plain\n");
    let rolled = h.ok(&["rollback", "api", "--env", "staging", "--to", "1"]);
    assert_eq!(rolled.lines().count(), 1);
    let config = h.ok(&["config", "get", "api", "--env", "staging"]);
    assert_eq!(
        config.lines().count(),
        2,
        "one line per key, never a forged DATABASE_URL=: {config:?}"
    );
    assert!(config.starts_with("A=\"\\u{1b}]8;;http://evil.example\\u{7}click"));
    assert!(config.contains("\\nDATABASE_URL=postgres://evil\"\n"));

    let expected_lines: &[(&[&str], usize)] = &[
        // The table, and the pin the rollback above left (issue 16).
        (&["status", "api"], 4),
        (&["apps", "show", "api"], 10),
        (&["audit"], 8),
        (&["releases", "api", "--env", "staging"], 4),
        (&["diff", "api", "--env", "staging", "1", "2"], 1),
        (&["config", "get", "api", "--env", "staging"], 2),
    ];
    for (args, lines) in expected_lines {
        let output = h.run(args);
        assert_success(args, &output);
        assert!(
            !has_control(&output.stdout),
            "hoist {args:?} printed a control character:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(!has_control(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.lines().count(), *lines, "hoist {args:?}:\n{stdout}");
        assert!(!stdout.lines().any(|l| l.starts_with("hoist: forged")));
    }

    // The refusal names the reason on one line of stderr: the newline cannot forge a second one.
    let stderr = h.fails(
        &["deploy", "api", "--env", "staging", "--image", &img],
        1,
        &["locked", "\\nhoist: forged"],
    );
    assert!(!has_control(stderr.trim_end().as_bytes()), "{stderr:?}");

    // JSON is the contract: the exact text, escaped by JSON alone.
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["staging"]["lock_reason"], HOSTILE);
    let show = h.json(&["apps", "show", "api"]);
    assert_eq!(show["builds"][0]["note"], HOSTILE);
    assert_eq!(show["builds"][0]["commit"], HOSTILE);
}
