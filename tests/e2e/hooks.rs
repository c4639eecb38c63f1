//! The exec target as a hostile or careless hook would test it: a process left in the background
//! does not hold the apply, an overrunning hook dies with everything it started, and a hook sees
//! only the environment it is given (never hoist's secrets).

use crate::harness::{image, wait_for, Hoist};
use std::path::Path;
use std::time::{Duration, Instant};

/// An app `api` with a release in staging whose target is `script`, plus `--exec-env` names.
fn app_with_hook(h: &Hoist, script: &str, pass_env: &[&str]) {
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", '1'));
    let mut args = vec![
        "envs", "target", "api", "--env", "staging", "--exec", script,
    ];
    for name in pass_env {
        args.extend(["--exec-env", name]);
    }
    h.ok(&args);
}

/// The pid written to `file` by a hook.
fn pid_in(file: &Path) -> u32 {
    wait_for("the hook to write a pid", Duration::from_secs(10), || {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
}

/// Whether `pid` is a live process (a zombie awaiting its reaper counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// Kills a process the test's hook started (and no other).
fn kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// A hook that starts `sleep 60` in the background, writes its pid to the returned file, then
/// runs `then`.
fn hook_with_a_grandchild(h: &Hoist, then: &str) -> std::path::PathBuf {
    let pid_file = h.dir.path().join("grandchild.pid");
    let script = format!("sleep 60 & echo $! > {}; {then}", pid_file.display());
    app_with_hook(h, &script, &[]);
    pid_file
}

pub fn a_background_process_does_not_hold_the_apply(h: &Hoist) {
    let pid_file = hook_with_a_grandchild(h, "echo started");
    let started = Instant::now();
    let applied = h.json(&["apply", "api", "--env", "staging", "--timeout", "30s"]);
    let took = started.elapsed();
    let grandchild = pid_in(&pid_file);
    assert_eq!(applied["outcome"], "applied");
    assert_eq!(applied["detail"], "exit 0\nstarted");
    // The grandchild lives 60 s and holds the hook's output: the apply ended with the hook.
    assert!(took < Duration::from_secs(5), "apply took {took:?}");
    assert!(alive(grandchild), "a background job outlives its hook");
    kill(grandchild);
}

pub fn an_overrunning_hook_is_killed_with_its_group(h: &Hoist) {
    let pid_file = hook_with_a_grandchild(h, "sleep 60");
    let started = Instant::now();
    let output = h.run(&[
        "apply",
        "api",
        "--env",
        "staging",
        "--timeout",
        "1s",
        "--json",
    ]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let failed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["detail"], "timed out after 1s: killed");
    assert!(took < Duration::from_secs(6), "apply took {took:?}");
    let grandchild = pid_in(&pid_file);
    let gone =
        crate::nats_server::poll::poll(Duration::from_secs(5), Duration::from_millis(50), || {
            (!alive(grandchild)).then_some(())
        });
    if gone.is_none() {
        kill(grandchild);
        panic!("the hook's background process {grandchild} outlived the timeout");
    }
}

pub fn a_hook_sees_only_the_environment_it_is_given(h: &Hoist) {
    let seen = h.dir.path().join("env");
    let script = format!("env > {}", seen.display());
    app_with_hook(h, &script, &[]);
    let apply = |h: &Hoist| {
        let mut command = h.command(&["apply", "api", "--env", "staging"]);
        command
            .env("FOO", "bar")
            .env("AWS_SECRET_ACCESS_KEY", "hunter2");
        // On NATS hoist reads the credentials file itself: a made-up one would stop it there.
        if !command.get_args().any(|a| a == "--nats") {
            command.env("HOIST_NATS_CREDS", h.dir.path().join("nats.creds"));
        }
        let output = command.output().unwrap();
        crate::harness::assert_success(&["apply"], &output);
        let text = std::fs::read_to_string(&seen).unwrap();
        let mut names: Vec<String> = text
            .lines()
            .filter_map(|l| Some(l.split_once('=')?.0.to_string()))
            // What `sh` adds by itself is the shell's, not hoist's.
            .filter(|n| !["PWD", "SHLVL", "_", "OLDPWD"].contains(&n.as_str()))
            .collect();
        names.sort();
        (names, text)
    };
    let (names, text) = apply(h);
    assert_eq!(
        names,
        [
            "HOIST_APP",
            "HOIST_ENV",
            "HOIST_IMAGE",
            "HOIST_VERSION",
            "HOME",
            "PATH"
        ],
        "{text}"
    );
    assert!(!text.contains("hunter2"));

    // Forwarded by name, and only those.
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "staging",
        "--exec",
        &script,
        "--exec-env",
        "FOO",
        "--exec-env",
        "HOIST_SECRET_KEY_FILE",
    ]);
    let (names, text) = apply(h);
    assert_eq!(
        names,
        [
            "FOO",
            "HOIST_APP",
            "HOIST_ENV",
            "HOIST_IMAGE",
            "HOIST_SECRET_KEY_FILE",
            "HOIST_VERSION",
            "HOME",
            "PATH"
        ],
        "{text}"
    );
    assert!(text.contains("FOO=bar\n"), "{text}");
    assert!(!text.contains("HOIST_NATS_CREDS"), "{text}");
    // The forwarded names are part of the target, as the log and status show it.
    let audit = h.json(&["audit", "--kind", "target"]);
    assert_eq!(
        audit[0]["summary"],
        format!("Target of staging: exec `{script}` (passing FOO, HOIST_SECRET_KEY_FILE)")
    );
    // A name that is no variable name is refused before anything is stored.
    h.fails(
        &[
            "envs",
            "target",
            "api",
            "--env",
            "staging",
            "--exec",
            &script,
            "--exec-env",
            "A-B",
        ],
        1,
        &["--exec-env", "A-B"],
    );
}
