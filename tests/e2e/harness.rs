//! Drives the real `hoist` binary as a user would: a temp store (or a NATS stream), its own
//! secret key and HOME, and helpers that assert exit codes and the one-line error contract.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_hoist");

/// A digest-pinned image whose digest is `n` repeated.
pub fn image(repo: &str, n: char) -> String {
    format!(
        "registry.example/{repo}@sha256:{}",
        n.to_string().repeat(64)
    )
}

pub struct Hoist {
    pub dir: tempfile::TempDir,
    /// Global flags naming the backend: `--store DIR` or `--nats URL --stream S`.
    backend_args: Vec<String>,
    /// Where the backend keeps its bytes on disk (the sled dir, or the NATS server's store dir).
    data_dir: PathBuf,
}

impl Hoist {
    /// A fresh embedded store.
    pub fn sled() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        Hoist {
            backend_args: vec!["--store".into(), store.display().to_string()],
            data_dir: store,
            dir,
        }
    }

    /// An embedded store at `store` (which a test has prepared, e.g. on a small filesystem).
    pub fn sled_at(store: &Path) -> Self {
        Hoist {
            backend_args: vec!["--store".into(), store.display().to_string()],
            data_dir: store.into(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A fresh stream `stream` on the NATS server(s) at `url` (comma-separated for a cluster),
    /// whose JetStream data lives in `data_dir`.
    pub fn nats(url: &str, stream: &str, data_dir: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend_args = ["--nats", url, "--stream", stream]
            .map(String::from)
            .to_vec();
        Hoist {
            dir,
            backend_args,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Commands through the `hoist serve --listen` API at `url`, as the holder of `token` (the
    /// remote CLI), with a HOME of its own (no saved login).
    pub fn through_server(&self, url: &str, token: &str) -> Self {
        Hoist {
            dir: tempfile::tempdir().expect("temp dir"),
            backend_args: ["--server", url, "--token", token]
                .map(String::from)
                .to_vec(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// The same backend with extra global flags (`--replicas 3`).
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.backend_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(&self.backend_args)
            .args(args)
            .env("HOIST_ACTOR", "ana@example.com")
            .env("HOIST_SECRET_KEY_FILE", self.dir.path().join("secret.key"))
            .env("HOME", self.dir.path())
            .env_remove("HOIST_STORE")
            .env_remove("HOIST_NATS_URL")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HOIST_CACHE")
            // Kubeconfig comes from $HOME/.kube/config, which a test writes when it needs one.
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("hoist runs")
    }

    /// Runs with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hoist runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("stdin accepts the input");
        child.wait_with_output().expect("hoist finishes")
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_success(args, &output);
        String::from_utf8(output.stdout).expect("utf-8 stdout")
    }

    /// `hoist deploy APP --env ENV --image IMAGE`, asserted to succeed.
    pub fn deploy(&self, app: &str, env: &str, image: &str) -> String {
        self.ok(&["deploy", app, "--env", env, "--image", image])
    }

    /// Runs with `--json`, asserts exit 0 and that stdout is exactly one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let stdout = self.ok(&with_json);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("hoist {args:?} --json printed no single JSON document ({e}):\n{stdout}")
        })
    }

    /// Runs, asserts the exit code, one line on stderr containing every `needles`, nothing on
    /// stdout, and that nothing was appended. Returns the stderr line.
    pub fn fails(&self, args: &[&str], code: i32, needles: &[&str]) -> String {
        self.fails_with_input(args, b"", code, needles)
    }

    /// As `fails`, with `input` on stdin.
    pub fn fails_with_input(
        &self,
        args: &[&str],
        input: &[u8],
        code: i32,
        needles: &[&str],
    ) -> String {
        let before = self.event_count();
        let output = self.run_with_input(args, input);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(
            output.status.code(),
            Some(code),
            "hoist {args:?}: expected exit {code}, stderr: {stderr}"
        );
        // Every error, usage errors included, is exactly one line.
        assert_eq!(
            stderr.lines().count(),
            1,
            "hoist {args:?}: one line on stderr, got:\n{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "hoist {args:?}: nothing on stdout on failure"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "hoist {args:?}: stderr should name {needle:?}: {stderr}"
            );
        }
        assert_eq!(
            self.event_count(),
            before,
            "hoist {args:?} failed but appended events"
        );
        stderr
    }

    /// Events in the log; 0 for an embedded store not created yet (reading it is exit 4): no
    /// directory, or one a process killed while creating it left without its lock file (the
    /// first thing a store holds; the log comes after it).
    pub fn event_count(&self) -> usize {
        if self.is_embedded() && !self.data_dir.join("hoist.lock").exists() {
            return 0;
        }
        self.ok(&["events"]).lines().count()
    }

    /// Whether this is an embedded store (`--store DIR`), not a NATS stream.
    pub fn is_embedded(&self) -> bool {
        self.backend_args.first().is_some_and(|a| a == "--store")
    }
}

pub fn assert_success(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "hoist {args:?} failed with {:?}:\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every file under `dir`, read as bytes, contains none of `needles`.
pub fn assert_no_file_contains(dir: &Path, needle: &str) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            assert_no_file_contains(&path, needle);
        } else {
            let bytes = std::fs::read(&path).expect("readable file");
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} contains {needle:?} in clear",
                path.display()
            );
        }
    }
}

/// Polls `condition` until it holds, or panics naming `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, condition: impl FnMut() -> Option<T>) -> T {
    crate::nats_server::poll::poll(deadline, Duration::from_millis(20), condition)
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}
