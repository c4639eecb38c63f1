//! Running a command as the caller, the way the CLI's `commands` runs it: one call of
//! `Hoist::execute`, counted in `hoist_commands_total`, then the answer's JSON view.

use crate::error::{status_of, ApiError};
use crate::{metrics, ok, Answer, Api};
use hoist_control::engine::service::Executed;
use hoist_control::engine::{AppName, Command, Event};
use hoist_control::views::ReleaseView;
use hoist_control::Caller;

/// Runs `command` on `app` as `caller`; `kind` names it in the metrics.
pub async fn execute(
    api: &Api,
    caller: &Caller,
    kind: &'static str,
    app: &AppName,
    command: Command,
) -> Result<Executed, ApiError> {
    let result = api.hoist.execute(caller, app, command).await;
    metrics::command(kind, outcome(&result));
    result.map_err(ApiError::from)
}

/// `ok`, or API.md's error code: the `outcome` label of a command or a rollout.
pub fn outcome<T>(result: &Result<T, hoist_control::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => status_of(e.kind()).1,
    }
}

/// Runs a command that creates a release, and answers with that release (CLI.md's release).
pub async fn release(
    api: &Api,
    caller: &Caller,
    kind: &'static str,
    app: &AppName,
    command: Command,
) -> Answer {
    let executed = execute(api, caller, kind, app, command).await?;
    let env = executed
        .events
        .iter()
        .find_map(|r| match &r.envelope.event {
            Some(Event::ReleaseCreated { env, .. }) => Some(env),
            _ => None,
        })
        .expect("a release command that succeeded recorded a release");
    let record = executed.state.envs[env]
        .current()
        .expect("the release just created");
    ok(ReleaseView::new(app, env, record))
}

/// A query value that does not parse (a time, a number): 400, the message saying which.
pub fn bad_query(e: hoist_control::Error) -> ApiError {
    ApiError::bad_request(e.message())
}
