//! The exec target, the escape hatch: `sh -c CMD` with the release as JSON on stdin and
//! `HOIST_APP`, `HOIST_ENV`, `HOIST_VERSION`, `HOIST_IMAGE` in its environment. Exit 0 means
//! applied. The command runs in its own process group, killed whole when it overruns its time, and
//! the tail of its output (stdout and stderr interleaved, as a terminal shows them) is reported.

use crate::{Outcome, Report};
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How much of the command's output the report keeps (the end of it).
pub const TAIL_BYTES: usize = 2_000;

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
}

pub async fn run(hook: Hook<'_>) -> Result<Report, ExecError> {
    let spawn_error = |source| ExecError::Spawn {
        command: hook.command.to_string(),
        source,
    };
    let (mut reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(hook.command)
        .env("HOIST_APP", hook.app)
        .env("HOIST_ENV", hook.env)
        .env("HOIST_VERSION", hook.version.to_string())
        .env("HOIST_IMAGE", hook.image)
        .stdin(Stdio::piped())
        .stdout(writer.try_clone().map_err(spawn_error)?)
        .stderr(writer)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    // Our copies of the pipe's write end went into the child: the reader sees EOF when the
    // command (and whatever it started) closes its output.
    let output = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
        tail
    });
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes it early: that is not a failure.
        let _ = stdin.write_all(&hook.release_json).await;
    }
    let status = match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(status) => Some(status.map_err(spawn_error)?),
        Err(_) => {
            if let Some(pid) = child.id() {
                // The whole group: `sh -c` may have started children that hold the output open.
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
            let _ = child.kill().await;
            None
        }
    };
    let tail = tokio::task::spawn_blocking(move || output.join().unwrap_or_default())
        .await
        .unwrap_or_default();
    let tail = tail_text(&tail);
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
}
