//! `hoist admin rebuild`: throw the read models away and replay the whole log into them, with a
//! progress bar on stderr (plain progress lines when stderr is not a terminal), then report the
//! rate. A rebuild killed midway leaves models that are a prefix of the fold with a checkpoint
//! saying which; the next command resumes from there.

use crate::backend::Backend;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::output::print_json;
use std::io::IsTerminal;
use std::time::Instant;

/// `hoist admin check`: every problem found, one per line (or `{"ok", "problems"}` with
/// `--json`), then exit 1 naming how many when there is any. On NATS, the messages on hoist's
/// subjects that are not hoist commits (reads skip them), found by reading the whole log.
pub async fn check(global: &GlobalArgs) -> Result<(), CliError> {
    let log = Backend::open(global).await?;
    let quarantined = match &log {
        Backend::Sled(_) => Vec::new(),
        Backend::Nats(nats) => nats.quarantined().await?,
    };
    let problems: Vec<serde_json::Value> = quarantined
        .iter()
        .map(|q| {
            serde_json::json!({
                "kind": "not_a_commit", "seq": q.seq, "subject": q.subject, "reason": q.reason,
                "message": format!("message {} on {} is not a hoist commit (skipped by every read): {}", q.seq, q.subject, q.reason),
            })
        })
        .collect();
    if global.json {
        print_json(&serde_json::json!({ "ok": problems.is_empty(), "problems": problems }));
    } else if problems.is_empty() {
        println!("The log is sound");
    } else {
        for problem in &problems {
            println!("{}", problem["message"].as_str().unwrap_or_default());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::rejected(format!(
            "admin check: {} problem{} found (listed on stdout)",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        )))
    }
}

pub async fn rebuild(global: &GlobalArgs) -> Result<(), CliError> {
    let log = Backend::open(global).await?;
    let mut models = crate::models::open(global, &log)?;
    models.reset()?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "rebuild {bar:40} {pos}/{len} log entries ({per_sec}, eta {eta})",
            )
            .expect("a valid template"),
        );
        bar
    });
    let started = Instant::now();
    let done = models
        .catch_up(&log, &mut |folded, end| match &bar {
            Some(bar) => {
                bar.set_length(end);
                bar.set_position(folded);
            }
            None => eprintln!("rebuild: folded log entries up to {folded} of {end}"),
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let events_per_s = (done.events as f64 / seconds.max(1e-9)).round();
    if global.json {
        print_json(&serde_json::json!({
            "commits": done.commits, "events": done.events, "seconds": seconds,
            "events_per_s": events_per_s, "checkpoint": done.checkpoint,
        }));
    } else {
        println!(
            "Rebuilt the read models from {} events ({} log entries) in {seconds:.2} s: {events_per_s} events/s",
            done.events, done.commits
        );
    }
    Ok(())
}
