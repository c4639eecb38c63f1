//! A full disk: the embedded store on a small tmpfs, filled to the last byte. A write must fail
//! within seconds with exit 4 naming the disk, leave the log as it was and the lock free, and the
//! store must work again once there is room. Needs root to mount a tmpfs; where that is refused
//! the test says so on stderr and checks nothing else (it never skips silently).

use crate::harness::{image, Hoist};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.into()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` to the last byte (large writes, then single pages), then gives
/// `leave` bytes back; returns the filler.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    for chunk in [vec![0u8; 1 << 20], vec![0u8; 4096]] {
        while file.write_all(&chunk).is_ok() {}
    }
    let _ = file.sync_all();
    let written = file.metadata().expect("filler size").len();
    file.set_len(written.saturating_sub(leave))
        .expect("give room back");
    file.sync_all().expect("filler synced");
    path
}

/// Runs `hoist args`, failing the test if it takes longer than `limit` (a hang is the bug).
fn run_within(h: &Hoist, args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = h
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hoist starts");
    crate::harness::wait_for(
        &format!("hoist {args:?} to finish on a full disk"),
        limit,
        || child.try_wait().expect("status").map(|_| ()),
    );
    (child.wait_with_output().expect("output"), started.elapsed())
}

pub fn a_full_disk_is_a_clean_exit_4_and_the_store_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mount = dir.path().join("disk");
    let _tmpfs = match Tmpfs::mount(&mount, "16m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("disk-full test NOT RUN: cannot mount a tmpfs here ({why}); it needs root");
            return;
        }
    };
    let h = Hoist::sled_at(&mount.join("store"));
    h.ok(&["apps", "create", "api"]);
    h.deploy("api", "staging", &image("api", 'a'));
    let before = h.event_count();

    // Not a page to spare: the log append itself fails (the value is larger than the slack in
    // the log file's last page).
    let filler = fill(&mount, 0);
    let big = format!("A={}", "x".repeat(16 << 10));
    let (output, took) = run_within(
        &h,
        &["config", "set", "api", "--env", "staging", &big],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(4),
        "a full disk is exit 4: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("disk full") && stderr.contains(&mount.display().to_string()),
        "names the disk: {stderr}"
    );
    assert!(
        took < Duration::from_secs(10),
        "fails within seconds, took {took:?}"
    );
    eprintln!(
        "disk full: config set exited 4 after {took:?}: {}",
        stderr.trim_end()
    );
    // Reads still answer (or say the disk is full), and nothing was appended.
    let (status, _) = run_within(&h, &["status", "api"], Duration::from_secs(20));
    assert!(
        matches!(status.status.code(), Some(0) | Some(4)),
        "status: {status:?}"
    );
    assert_eq!(h.event_count(), before, "the failed write appended nothing");

    // Room for the log but not for the read models: the write is stored, the models wait.
    std::fs::remove_file(&filler).expect("free the disk");
    let filler = fill(&mount, 1 << 20);
    let (output, _) = run_within(
        &h,
        &["config", "set", "api", "--env", "staging", "B=2"],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "the log had room: {stderr}");
    assert!(
        stderr.contains("disk full"),
        "the models' write is deferred, with a warning: {stderr}"
    );
    let (status, took) = run_within(&h, &["status", "api"], Duration::from_secs(20));
    assert!(
        matches!(status.status.code(), Some(4)),
        "models cannot catch up without room: {status:?}"
    );
    assert!(took < Duration::from_secs(10));

    // Room again: everything works, nothing was lost, the store checks out.
    std::fs::remove_file(&filler).expect("free the disk");
    h.ok(&["config", "set", "api", "--env", "staging", "C=3"]);
    assert_eq!(h.event_count(), before + 2, "B and C are stored, A is not");
    let config = h.json(&["config", "get", "api", "--env", "staging"]);
    assert_eq!(config["config"]["B"], "2");
    assert_eq!(config["config"]["C"], "3");
    assert!(config["config"].get("A").is_none());
    h.ok(&["admin", "check"]);
}

/// A byte damaged in the middle of the embedded log (a bad sector, not a crash): the store
/// refuses to be used rather than cut acknowledged records away, changes nothing, `admin check`
/// names the damage, and `events export` still saves every record before it (exit 4, since the
/// backup is not the whole log).
pub fn damage_in_the_middle_of_the_log_is_refused_and_salvaged() {
    let h = Hoist::sled();
    h.ok(&["apps", "create", "api"]);
    for n in 0..5 {
        h.ok(&[
            "config",
            "set",
            "api",
            "--env",
            "staging",
            &format!("K{n}=v"),
        ]);
    }
    let before = h.ok(&["events", "export"]);
    let log = h.data_dir().join("log");
    let mut bytes = std::fs::read(&log).expect("the log");
    // Inside the third record's body: past the magic and two records of this size.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&log, &bytes).expect("damage the log");

    let check = h.run(&["admin", "check", "--json"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).expect("json");
    assert_eq!(report["problems"][0]["kind"], "damaged_log", "{report}");
    let write = h.run(&["config", "set", "api", "--env", "staging", "X=1"]);
    let stderr = String::from_utf8_lossy(&write.stderr);
    assert_eq!(write.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("damaged") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&log).expect("the log"),
        bytes,
        "nothing changed"
    );

    let export = h.run(&["events", "export"]);
    assert_eq!(export.status.code(), Some(4), "{export:?}");
    let salvaged = String::from_utf8(export.stdout).expect("utf-8");
    assert!(
        !salvaged.is_empty(),
        "the records before the damage are exported"
    );
    assert!(
        before.starts_with(&salvaged),
        "what is exported is a prefix of the log as it was"
    );
    assert!(salvaged.lines().count() < before.lines().count());
}

/// Read models that cannot even be opened (here: a file where a database directory should be)
/// fail queries with exit 4 naming them, and `admin rebuild` starts them afresh from the log.
pub fn admin_rebuild_replaces_models_that_cannot_be_opened() {
    let h = Hoist::sled();
    h.ok(&["apps", "create", "api"]);
    h.ok(&["config", "set", "api", "--env", "staging", "A=1"]);
    let state = h.data_dir().join("projections").join("state");
    std::fs::remove_dir_all(&state).expect("the state model");
    std::fs::write(&state, b"not a database").expect("a file in its place");

    let status = h.run(&["status", "api"]);
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let rebuild = h.run(&["admin", "rebuild"]);
    assert!(rebuild.status.success(), "{rebuild:?}");
    assert!(String::from_utf8_lossy(&rebuild.stderr).contains("starting them afresh"));
    let status = h.json(&["status", "api"]);
    assert_eq!(status["envs"]["staging"]["version"], 1);
    h.ok(&["admin", "check"]);
}
