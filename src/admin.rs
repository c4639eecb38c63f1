//! `hoist admin rebuild`: throw the read models away and replay the whole log into them, with a
//! progress bar on stderr (plain progress lines when stderr is not a terminal), then report the
//! rate. A rebuild killed midway leaves models that are a prefix of the fold with a checkpoint
//! saying which; the next command resumes from there.

use crate::backend::Backend;
use crate::cli::GlobalArgs;
use crate::error::CliError;
use crate::output::{outln, print_json};
use std::io::IsTerminal;
use std::time::Instant;

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
            None => crate::output::stderr_line(&format!(
                "rebuild: folded log entries up to {folded} of {end}"
            )),
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
        outln!(
            "Rebuilt the read models from {} events ({} log entries) in {seconds:.2} s: {events_per_s} events/s",
            done.events, done.commits
        );
    }
    Ok(())
}
