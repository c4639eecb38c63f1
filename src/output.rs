//! What hoist prints: the `--json` shapes of CLI.md (a public contract) and the human tables.

use chrono::{DateTime, SecondsFormat, Utc};
use hoist_engine::{AppName, AppState, EnvName, ImageRef, Lock, ReleaseRecord, Rollout};
use hoist_projections::model::AppStatus;
use serde::Serialize;
use std::collections::BTreeMap;

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize)]
pub struct SourceView<'a> {
    pub env: &'a EnvName,
    pub version: u64,
}

/// A release, as `releases`, `deploy`, `promote`, `rollback` and `config set/unset` print it.
#[derive(Debug, Serialize)]
pub struct ReleaseView<'a> {
    pub app: &'a AppName,
    pub env: &'a EnvName,
    pub version: u64,
    pub kind: &'static str,
    pub image: Option<&'a ImageRef>,
    pub build: Option<&'a str>,
    pub config: BTreeMap<&'a str, &'a str>,
    pub description: &'a str,
    pub actor: &'a str,
    pub at: String,
    pub source: Option<SourceView<'a>>,
    pub rollback_to: Option<u64>,
}

impl<'a> ReleaseView<'a> {
    pub fn new(app: &'a AppName, env: &'a EnvName, record: &'a ReleaseRecord) -> Self {
        let release = &record.release;
        ReleaseView {
            app,
            env,
            version: release.version.get(),
            kind: release.kind.as_str(),
            image: release.build.as_ref().map(|b| &b.image),
            build: release.build.as_ref().map(|b| b.id.as_str()),
            config: release
                .config
                .iter()
                .map(|(k, v)| (k.as_str(), v.display()))
                .collect(),
            description: &release.description,
            actor: record.actor.as_str(),
            at: timestamp(record.at),
            source: release.source.as_ref().map(|s| SourceView {
                env: &s.env,
                version: s.version.get(),
            }),
            rollback_to: release.rollback_to.map(|v| v.get()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EnvStatusView<'a> {
    pub version: Option<u64>,
    pub image: Option<&'a ImageRef>,
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_reason: Option<&'a str>,
    pub released_at: Option<String>,
    /// The version last applied to the env's target (whatever came of it); `None` before any.
    pub applied_version: Option<u64>,
    /// What came of it: `applied` (health not awaited), `healthy` or `failed`.
    pub health: Option<&'static str>,
}

/// `status`: the current release of every env, in pipeline order.
#[derive(Debug, Serialize)]
pub struct StatusView<'a> {
    pub app: &'a AppName,
    #[serde(serialize_with = "ordered_map")]
    pub envs: Vec<(&'a EnvName, EnvStatusView<'a>)>,
}

/// Serializes pairs as a JSON object in their given (pipeline) order.
fn ordered_map<S: serde::Serializer, K: Serialize, V: Serialize>(
    pairs: &[(K, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl<'a> StatusView<'a> {
    pub fn new(app: &'a AppName, state: &'a AppState) -> Self {
        Self::of(app, &state.pipeline, |env| {
            let env_state = &state.envs[env];
            (
                env_state.current(),
                env_state.lock.as_ref(),
                env_state.rollout.as_ref(),
            )
        })
    }

    /// From the status read model, which keeps exactly what this view shows.
    pub fn of_model(app: &'a AppName, status: &'a AppStatus) -> Self {
        Self::of(app, &status.pipeline, |env| {
            let env_status = &status.envs[env];
            (
                env_status.current(),
                env_status.lock.as_ref(),
                env_status.rollout.as_ref(),
            )
        })
    }

    fn of(
        app: &'a AppName,
        pipeline: &'a [EnvName],
        env_now: impl Fn(
            &EnvName,
        ) -> (
            Option<&'a ReleaseRecord>,
            Option<&'a Lock>,
            Option<&'a Rollout>,
        ),
    ) -> Self {
        let envs = pipeline
            .iter()
            .map(|env| {
                let (current, lock, rollout) = env_now(env);
                let view = EnvStatusView {
                    version: current.map(|r| r.release.version.get()),
                    image: current
                        .and_then(|r| r.release.build.as_ref())
                        .map(|b| &b.image),
                    locked: lock.is_some(),
                    locked_by: lock.map(|l| l.actor.as_str()),
                    lock_reason: lock.map(|l| l.reason.as_str()),
                    released_at: current.map(|r| timestamp(r.at)),
                    applied_version: rollout.map(|r| r.version.get()),
                    health: rollout.map(|r| r.outcome.as_str()),
                };
                (env, view)
            })
            .collect();
        StatusView { app, envs }
    }
}

pub fn short_image(image: Option<&ImageRef>) -> &str {
    image.map_or("-", ImageRef::short)
}

/// A plain text table: a header row, then rows, columns padded to fit (the last is not padded).
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let rows: Vec<[String; N]> = rows.into_iter().collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 < N {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}
