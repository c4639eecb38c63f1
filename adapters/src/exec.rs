//! The exec target, the escape hatch: `sh -c CMD` with the release as JSON on stdin and
//! `HOIST_APP`, `HOIST_ENV`, `HOIST_VERSION`, `HOIST_IMAGE` in its environment. Exit 0 means
//! applied. The tail of its output (stdout and stderr interleaved, as a terminal shows them) is
//! reported.
//!
//! A hook is someone else's program run with hoist's authority, so it is fenced in:
//! - **environment**: cleared, then only `PATH`, `HOME`, the `HOIST_*` release variables and the
//!   names the target forwards (`--exec-env NAME`) are set. hoist's own secrets
//!   (`HOIST_SECRET_KEY_FILE`, `HOIST_NATS_CREDS`, a cloud provider's keys) never reach a hook
//!   that did not ask for them by name.
//! - **time**: the command runs in its own process group. When it overruns its time the whole
//!   group is killed (`SIGKILL`), whatever it started included. A hook that exits in time, with
//!   0 or not, is not followed further: processes it left running in the background
//!   (`sleep 60 &`) are not killed and go on after the apply, in the hook's process group.
//! - **output**: read until the command exits, then for at most [`OUTPUT_GRACE`]. Such a
//!   background process keeps its copy of the output pipe open, but the apply does not wait for
//!   it: the hook's exit is the end of the apply. What it writes later is read and dropped for
//!   as long as this hoist process runs (`serve`), so it is not blocked by a full pipe; once
//!   hoist exits (`hoist apply` returns) nothing reads the pipe, and a later write fails with
//!   `EPIPE`, or `SIGPIPE` ends a process that does not handle it.

use crate::{Outcome, Report};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of the command's output the report keeps (the end of it).
pub const TAIL_BYTES: usize = 2_000;
/// How long output is still read after the command exited: what it wrote just before exiting is
/// already in the pipe, so this only bounds the wait for a background process holding it open.
pub const OUTPUT_GRACE: Duration = Duration::from_millis(200);
/// The release variables a hook gets, besides the forwarded ones.
pub const RELEASE_VARS: [&str; 4] = ["HOIST_APP", "HOIST_ENV", "HOIST_VERSION", "HOIST_IMAGE"];
/// `PATH` when hoist itself runs without one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec target: cannot start `sh -c {command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// One run of the hook.
pub struct Hook<'a> {
    pub command: &'a str,
    /// The release, as CLI.md's JSON shape (secrets redacted), handed on stdin.
    pub release_json: Vec<u8>,
    pub app: &'a str,
    pub env: &'a str,
    pub version: u64,
    /// Empty while the release has no image.
    pub image: &'a str,
    pub timeout: Duration,
    /// Variables of hoist's own environment handed on to the hook (when set).
    pub pass_env: Vec<&'a str>,
}

impl Hook<'_> {
    /// The hook's whole environment (see the module doc), with hoist's own variables as
    /// `lookup` gives them.
    fn environment(&self, lookup: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let mut vars = vec![(
            "PATH".to_string(),
            lookup("PATH").unwrap_or_else(|| DEFAULT_PATH.to_string()),
        )];
        let forwarded = std::iter::once("HOME").chain(self.pass_env.iter().copied());
        vars.extend(forwarded.filter_map(|name| Some((name.to_string(), lookup(name)?))));
        let release = [
            self.app.to_string(),
            self.env.to_string(),
            self.version.to_string(),
            self.image.to_string(),
        ];
        // Set last: a forwarded variable of the same name never hides the release's own.
        vars.extend(RELEASE_VARS.iter().map(|n| n.to_string()).zip(release));
        vars
    }
}

pub async fn run(hook: Hook<'_>) -> Result<Report, ExecError> {
    let spawn_error = |source| ExecError::Spawn {
        command: hook.command.to_string(),
        source,
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(hook.command)
        .env_clear()
        .envs(hook.environment(|name| std::env::var(name).ok()))
        .stdin(Stdio::piped())
        .stdout(writer.try_clone().map_err(spawn_error)?)
        .stderr(writer)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    // Our copies of the pipe's write end went into the child: the reader sees EOF when the
    // command and whatever it started have closed their output.
    let output = Output::read(reader).map_err(spawn_error)?;
    let stdin = child.stdin.take().map(|mut stdin| {
        let json = hook.release_json.clone();
        // Written aside: a command that never reads its stdin must still meet its timeout. One
        // that does not read it closes it early, which is not a failure either.
        tokio::spawn(async move {
            let _ = stdin.write_all(&json).await;
        })
    });
    let status = match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(status) => Some(status.map_err(spawn_error)?),
        Err(_) => {
            // The whole group (its id is the shell's pid): `sh -c` may have started children
            // that hold the output open. A group already gone is no error worth reporting.
            let group = child
                .id()
                .and_then(|pid| rustix::process::Pid::from_raw(i32::try_from(pid).ok()?));
            if let Some(group) = group {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            None
        }
    };
    if let Some(stdin) = stdin {
        stdin.abort();
    }
    let tail = tail_text(&output.tail_after(OUTPUT_GRACE).await);
    let (outcome, first) = match status {
        Some(status) if status.success() => (Outcome::Applied, "exit 0".to_string()),
        Some(status) => (
            Outcome::Failed,
            match status.code() {
                Some(code) => format!("exit {code}"),
                None => format!("{status}"),
            },
        ),
        None => (
            Outcome::Failed,
            format!("timed out after {:?}: killed", hook.timeout),
        ),
    };
    let detail = if tail.is_empty() {
        first
    } else {
        format!("{first}\n{tail}")
    };
    Ok(Report {
        outcome,
        changed: true,
        detail,
    })
}

/// The hook's output, read by a task of its own until every writer closed the pipe.
struct Output {
    /// The last bytes read (at most `2 * TAIL_BYTES`).
    tail: Arc<Mutex<Vec<u8>>>,
    closed: tokio::sync::oneshot::Receiver<()>,
}

impl Output {
    fn read(reader: std::io::PipeReader) -> std::io::Result<Output> {
        let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())?;
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        let kept = Arc::clone(&tail);
        // Detached: after the apply it drains what background processes still write, so they
        // never block on a full pipe; it ends when the last of them closes its output.
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut tail = kept.lock().unwrap_or_else(|e| e.into_inner());
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * TAIL_BYTES {
                    let cut = tail.len() - TAIL_BYTES;
                    tail.drain(..cut);
                }
            }
            let _ = closed_tx.send(());
        });
        Ok(Output { tail, closed })
    }

    /// What was read once the pipe closed, or `grace` from now, whichever comes first.
    async fn tail_after(self, grace: Duration) -> Vec<u8> {
        let _ = tokio::time::timeout(grace, self.closed).await;
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.clone()
    }
}

/// The last `TAIL_BYTES` of `output` as text, cut at a character boundary, trailing newline off.
fn tail_text(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let mut start = text.len().saturating_sub(TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str, timeout: Duration) -> Hook<'_> {
        Hook {
            command,
            release_json: br#"{"version": 3}"#.to_vec(),
            app: "api",
            env: "staging",
            version: 3,
            image: "registry.example/api@sha256:00",
            timeout,
            pass_env: vec![],
        }
    }

    #[tokio::test]
    async fn the_hook_gets_the_release_on_stdin_and_in_its_environment() {
        let report = run(hook(
            r#"cat; echo; echo "$HOIST_APP $HOIST_ENV $HOIST_VERSION $HOIST_IMAGE" >&2"#,
            Duration::from_secs(10),
        ))
        .await
        .unwrap();
        assert_eq!(report.outcome, Outcome::Applied);
        assert_eq!(
            report.detail,
            "exit 0\n{\"version\": 3}\napi staging 3 registry.example/api@sha256:00"
        );
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_with_the_output_tail() {
        let report = run(hook(
            "for i in $(seq 1 2000); do echo line $i; done; exit 3",
            Duration::from_secs(10),
        ))
        .await
        .unwrap();
        assert_eq!(report.outcome, Outcome::Failed);
        assert!(report.detail.starts_with("exit 3\n"), "{}", report.detail);
        assert!(report.detail.ends_with("line 2000"), "{}", report.detail);
        assert!(report.detail.len() <= TAIL_BYTES + 10);
    }

    #[tokio::test]
    async fn an_overrunning_hook_and_its_children_are_killed() {
        let started = std::time::Instant::now();
        let report = run(hook(
            "echo started; sleep 30 & sleep 30",
            Duration::from_millis(300),
        ))
        .await
        .unwrap();
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.detail, "timed out after 300ms: killed\nstarted");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_background_process_holding_the_output_does_not_hold_the_apply() {
        let started = std::time::Instant::now();
        let report = run(hook(
            "echo before; sleep 30 & echo started",
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
        assert_eq!(report.outcome, Outcome::Applied);
        assert_eq!(report.detail, "exit 0\nbefore\nstarted");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_hook_that_never_reads_a_large_stdin_still_meets_its_timeout() {
        let mut hook = hook("sleep 30", Duration::from_millis(300));
        hook.release_json = vec![b' '; 1 << 20];
        let started = std::time::Instant::now();
        let report = run(hook).await.unwrap();
        assert_eq!(report.outcome, Outcome::Failed);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn the_environment_is_path_home_the_release_and_forwarded_names_only() {
        let ours = |name: &str| {
            let value = match name {
                "HOME" => "/home/hoist",
                "FORWARDED" => "yes",
                "KEPT_BACK" => "no",
                "HOIST_APP" => "forged",
                _ => return None,
            };
            Some(value.to_string())
        };
        let mut forwarded = hook("true", Duration::from_secs(10));
        forwarded.pass_env = vec!["FORWARDED", "UNSET", "HOIST_APP"];
        let environment = forwarded.environment(ours);
        let get = |name: &str| {
            let values: Vec<&str> = environment
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            values.last().copied()
        };
        assert_eq!(get("PATH"), Some(DEFAULT_PATH), "hoist without a PATH");
        assert_eq!(get("HOME"), Some("/home/hoist"));
        assert_eq!(get("FORWARDED"), Some("yes"));
        assert_eq!(get("UNSET"), None);
        assert_eq!(get("KEPT_BACK"), None);
        // Set last: a forwarded name never hides the release's own.
        assert_eq!(get("HOIST_APP"), Some("api"));
        assert_eq!(get("HOIST_VERSION"), Some("3"));
    }

    #[tokio::test]
    async fn the_hook_gets_exactly_the_environment_built_for_it() {
        let mut forwarded = hook("env | cut -d= -f1 | sort", Duration::from_secs(10));
        forwarded.pass_env = vec!["HOIST_TEST_EXEC_UNSET"];
        let mut expected: Vec<String> = forwarded
            .environment(|name| std::env::var(name).ok())
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        expected.sort();
        expected.dedup();
        let report = run(forwarded).await.unwrap();
        let mut names: Vec<&str> = report.detail.lines().skip(1).collect();
        // What `sh` itself adds (PWD, SHLVL, `_`) is the shell's, not hoist's.
        names.retain(|n| !["PWD", "SHLVL", "_", "OLDPWD"].contains(n));
        assert_eq!(names, expected);
    }
}
