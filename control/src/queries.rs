//! The questions front ends ask: apps, an app, its status, an env's releases and config, the
//! audit trail, what changed between two releases, whether the hash chains hold. Current answers
//! come from the read models; answers as of a past time (`at`) from a replay of the app's events
//! up to it.

use crate::error::{Error, Result};
use crate::store::OpenMode;
use crate::text::env_value;
use crate::views::{timestamp, ConfigShown, StatusView, Verified};
use crate::Hoist;
use chrono::{DateTime, Utc};
use hoist_engine::chain::ChainVerifier;
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::Principal;
use hoist_engine::{
    authorize, Action, AppName, AppState, ConfigValue, EnvName, EnvState, Recorded, Release,
    ReleaseRecord, ReleaseVersion, Scope,
};
use hoist_projections::audit::{AuditEntry, AuditQuery, KINDS};
use hoist_projections::model::AppStatus;
use hoist_projections::store::ProjectionStore;
use hoist_stores::AnyStore;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// How many commits one read of the whole log asks for.
pub(crate) const PAGE: usize = 10_000;

/// An app's status: from the read model (now) or a replay (as of a past time).
pub enum Status {
    Now(AppName, AppStatus),
    Replayed(AppName, AppState),
}

impl Status {
    pub fn view(&self) -> StatusView<'_> {
        match self {
            Status::Now(app, status) => StatusView::of_model(app, status),
            Status::Replayed(app, state) => StatusView::new(app, state),
        }
    }
}

impl Hoist {
    /// Whether `principal` may `action` on `scope`: every query asks before it reads.
    pub(crate) fn allowed(
        &self,
        principal: &Principal,
        action: Action,
        scope: &Scope,
    ) -> Result<()> {
        Ok(authorize(principal, &action, scope)?)
    }

    /// Every app `principal` may view, with its state: the others are left out, not refused
    /// (a viewer of one app lists that app; the owner, every app).
    pub async fn apps(&self, principal: &Principal) -> Result<Vec<(AppName, AppState)>> {
        let log = self.open_log(OpenMode::Existing).await?;
        let mut apps = Vec::new();
        for app in self.viewable_apps(&log, principal).await? {
            if let Some(state) = app_with_history(&log, &app).await? {
                apps.push((app, state));
            }
        }
        Ok(apps)
    }

    // issue 13
    /// The names of the apps `principal` may view, without folding their histories (the web
    /// UI's pipeline page asks each one's `status` from the read models next). Kept, like a
    /// query's answer, while the log has not moved: opening the embedded log reads it whole.
    pub async fn app_names(&self, principal: &Principal) -> Result<Vec<AppName>> {
        let cached = self
            .settled_head()
            .map(|head| (head, format!("app names|{principal:?}")));
        if let Some((head, key)) = &cached {
            let known = self.answers.get(*head, key);
            if let Some(names) = known.and_then(|a| serde_json::from_str(&a.json).ok()) {
                return Ok(names);
            }
        }
        let log = self.open_log(OpenMode::Existing).await?;
        let names = self.viewable_apps(&log, principal).await?;
        if let Some((head, key)) = cached {
            let json = serde_json::to_string(&names).expect("names serialize");
            let answer = crate::Answer {
                json,
                human: String::new(),
                failure: None,
            };
            self.answers.put(head, key, &answer);
        }
        Ok(names)
    }

    async fn viewable_apps(&self, log: &AnyStore, principal: &Principal) -> Result<Vec<AppName>> {
        // The access chain is no app: `access list` shows it.
        let viewable = |app: &AppName| {
            !app.is_access()
                && self
                    .allowed(principal, Action::View, &Scope::app(app))
                    .is_ok()
        };
        Ok(log.apps().await?.into_iter().filter(viewable).collect())
    }

    /// The app's state (as of `at`, when given), or a rejection naming the unknown app.
    pub async fn app(
        &self,
        principal: &Principal,
        app: &AppName,
        at: Option<DateTime<Utc>>,
    ) -> Result<AppState> {
        self.allowed(principal, Action::View, &Scope::app(app))?;
        let log = self.open_log(OpenMode::Existing).await?;
        let events = service::load_events(&log, app).await?;
        let state = AppState::fold(
            events
                .iter()
                .filter(|r| at.is_none_or(|at| r.envelope.at <= at)),
        );
        self.warn_unknown(state.skipped_unknown);
        if !state.exists() {
            return Err(match at {
                Some(at) => {
                    Error::rejected(format!("app {app} did not exist yet at {}", timestamp(at)))
                }
                None => unknown_app(app),
            });
        }
        Ok(state)
    }

    /// The current release, lock and rollout of every env of `app` (as of `at`, when given).
    pub async fn status(
        &self,
        principal: &Principal,
        app: &AppName,
        at: Option<DateTime<Utc>>,
    ) -> Result<Status> {
        if at.is_some() {
            let state = self.app(principal, app, at).await?;
            return Ok(Status::Replayed(app.clone(), state));
        }
        self.allowed(principal, Action::View, &Scope::app(app))?;
        let log = self.open_log(OpenMode::Existing).await?;
        let models = self.models_caught_up(&log).await?;
        self.warn_quarantined(&log);
        let status = self.existing_status(&models, app)?;
        Ok(Status::Now(app.clone(), status))
    }

    /// `env`'s releases, newest first, at most `limit` (as of `at`, when given).
    pub async fn releases(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
        at: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>> {
        if at.is_some() {
            let state = self.app(principal, app, at).await?;
            let env_state = env_of(app, &state, env)?;
            return Ok(env_state
                .releases
                .iter()
                .rev()
                .take(limit)
                .cloned()
                .collect());
        }
        self.allowed(principal, Action::View, &Scope::env(app, env))?;
        let log = self.open_log(OpenMode::Existing).await?;
        let models = self.models_caught_up(&log).await?;
        let status = self.existing_status(&models, app)?;
        if !status.envs.contains_key(env) {
            return Err(not_in_pipeline(app, &status.pipeline, env));
        }
        Ok(models.releases(&log, app, &status, env, limit).await?)
    }

    /// The audit trail: events matching `query`, newest first, at most `limit`.
    pub async fn audit(
        &self,
        principal: &Principal,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        if let Some(kind) = &query.kind {
            if !KINDS.contains(&kind.as_str()) {
                return Err(Error::rejected(format!(
                    "invalid kind {kind:?}: must be one of {}",
                    KINDS.join(", ")
                )));
            }
        }
        let scope = Scope {
            app: query.app.clone(),
            env: query.env.clone(),
        };
        self.allowed(principal, Action::View, &scope)?;
        let log = self.open_log(OpenMode::Existing).await?;
        let models = self.models_caught_up(&log).await?;
        self.warn_quarantined(&log);
        Ok(models.audit(&log, query, limit).await?)
    }

    /// What changed between two releases of `env`.
    pub async fn diff(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
        from: ReleaseVersion,
        to: ReleaseVersion,
    ) -> Result<Diff> {
        let state = self.app(principal, app, None).await?;
        let env_state = env_of(app, &state, env)?;
        let record = |version: ReleaseVersion| {
            env_state.release(version).ok_or_else(|| {
                let latest = env_state
                    .current()
                    .map_or("none".to_string(), |r| r.release.version.to_string());
                Error::rejected(format!(
                    "{app}/{env} has no release {version} (latest is {latest})"
                ))
            })
        };
        Ok(Diff::between(
            app,
            env,
            (from, &record(from)?.release),
            (to, &record(to)?.release),
        ))
    }

    /// `env`'s current config: secrets as `<redacted>`, or in clear when `reveal`.
    pub async fn config(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
        reveal: bool,
    ) -> Result<ConfigShown> {
        if reveal {
            self.allowed(principal, Action::Reveal, &Scope::env(app, env))?;
        }
        let state = self.app(principal, app, None).await?;
        let current = env_of(app, &state, env)?.current();
        let config = current
            .map(|r| r.release.config.clone())
            .unwrap_or_default();
        let opener = if reveal && config.values().any(|v| matches!(v, ConfigValue::Sealed(_))) {
            Some(self.opening_key(&config)?)
        } else {
            None
        };
        let mut shown = BTreeMap::new();
        for (key, value) in &config {
            let text = match (value, &opener) {
                (ConfigValue::Sealed(sealed), Some(opener)) => {
                    opener.open(key.as_str(), sealed).map_err(Error::rejected)?
                }
                _ => value.display().to_string(),
            };
            shown.insert(key.to_string(), text);
        }
        Ok(ConfigShown {
            app: app.clone(),
            env: env.clone(),
            version: current.map(|r| r.release.version.get()),
            config: shown,
        })
    }

    /// Checks every hash chain (or one app's); rejected naming the first broken link.
    pub async fn verify(&self, principal: &Principal, app: Option<&AppName>) -> Result<Verified> {
        let scope = match app {
            Some(app) => Scope::app(app),
            None => Scope::everything(),
        };
        self.allowed(principal, Action::View, &scope)?;
        let log = self.open_log(OpenMode::Existing).await?;
        let events = all_events(&log, app).await?;
        let mut verifier = ChainVerifier::default();
        for recorded in &events {
            verifier.check(recorded).map_err(Error::rejected)?;
        }
        // Every chain is verified; the access chain is not counted as an app.
        let apps: BTreeSet<&AppName> = events
            .iter()
            .map(|r| &r.envelope.app)
            .filter(|app| !app.is_access())
            .collect();
        Ok(Verified {
            apps: apps.len(),
            events: verifier.checked,
        })
    }

    /// The app's status read model, or a rejection naming the unknown app.
    fn existing_status(&self, models: &ProjectionStore, app: &AppName) -> Result<AppStatus> {
        let status = models
            .status(app)?
            .filter(AppStatus::exists)
            .ok_or_else(|| unknown_app(app))?;
        self.warn_unknown(status.skipped_unknown);
        Ok(status)
    }
}

/// Every event of the log (or of one app), in log order.
async fn all_events<S: EventStore>(log: &S, app: Option<&AppName>) -> Result<Vec<Recorded>> {
    if let Some(app) = app {
        return Ok(service::load_events(log, app).await?);
    }
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = log.read_from(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        events.extend(service::decode_commits(&page)?);
    }
    Ok(events)
}

/// `app`'s state, or `None` when the store lists it without history: a NATS subject that holds
/// only quarantined messages is no app (for `apps list`, nor for an import's "already exists").
pub(crate) async fn app_with_history<S: EventStore>(
    log: &S,
    app: &AppName,
) -> Result<Option<AppState>> {
    let state = service::load_app(log, app).await?;
    Ok((!state.pipeline.is_empty()).then_some(state))
}

/// `env` of `app`, or a rejection naming the pipeline.
pub fn env_of<'a>(app: &AppName, state: &'a AppState, env: &EnvName) -> Result<&'a EnvState> {
    state
        .env(env)
        .ok_or_else(|| not_in_pipeline(app, &state.pipeline, env))
}

fn not_in_pipeline(app: &AppName, pipeline: &[EnvName], env: &EnvName) -> Error {
    let pipeline: Vec<&str> = pipeline.iter().map(EnvName::as_str).collect();
    Error::rejected(format!(
        "env {env} is not in the pipeline of app {app} ({})",
        pipeline.join(", ")
    ))
}

fn unknown_app(app: &AppName) -> Error {
    Error::new(
        crate::ErrorKind::NotFound,
        format!("app {app} does not exist (see `hoist apps list`)"),
    )
}

/// What changed between two releases. Secrets compare by their sealed bytes: setting the same
/// secret again shows as changed, and its value is never shown.
pub struct Diff {
    app: AppName,
    env: EnvName,
    from: ReleaseVersion,
    to: ReleaseVersion,
    image: Option<Value>,
    config: Value,
    lines: Vec<String>,
    /// issue 14: the builds' process types and release commands, when they differ.
    formation: Option<Value>,
}

impl Diff {
    fn between(
        app: &AppName,
        env: &EnvName,
        (from, old): (ReleaseVersion, &Release),
        (to, new): (ReleaseVersion, &Release),
    ) -> Self {
        let image_of = |r: &Release| r.build.as_ref().map(|b| b.image.to_string());
        let (old_image, new_image) = (image_of(old), image_of(new));
        let mut lines = Vec::new();
        let image = (old_image != new_image).then(|| {
            lines.push(format!(
                "image: {} → {}",
                old_image.as_deref().unwrap_or("none"),
                new_image.as_deref().unwrap_or("none")
            ));
            json!({"from": old_image, "to": new_image})
        });
        // issue 14: process types and the release command belong to the build.
        let formation_of = |r: &Release| {
            let build = r.build.as_ref();
            let processes: BTreeMap<String, Option<String>> =
                hoist_engine::formation::process_types(
                    build.map(|b| &b.processes).unwrap_or(&Default::default()),
                )
                .into_iter()
                .map(|(t, c)| (t.to_string(), c.map(str::to_string)))
                .collect();
            (processes, build.and_then(|b| b.release_command.clone()))
        };
        let (old_formation, new_formation) = (formation_of(old), formation_of(new));
        let formation = (old_formation != new_formation).then(|| {
            let shown = |c: &Option<String>| {
                c.as_deref()
                    .map_or("(image entrypoint)".to_string(), |c| env_value(c).into_owned())
            };
            for (t, c) in &new_formation.0 {
                match old_formation.0.get(t) {
                    None => lines.push(format!("+ process {t}: {}", shown(c))),
                    Some(was) if was != c => {
                        lines.push(format!("~ process {t}: {} → {}", shown(was), shown(c)))
                    }
                    Some(_) => {}
                }
            }
            for (t, c) in &old_formation.0 {
                if !new_formation.0.contains_key(t) {
                    lines.push(format!("- process {t}: {}", shown(c)));
                }
            }
            if old_formation.1 != new_formation.1 {
                let shown = |c: &Option<String>| {
                    c.as_deref()
                        .map_or("none".to_string(), |c| env_value(c).into_owned())
                };
                lines.push(format!(
                    "release command: {} → {}",
                    shown(&old_formation.1),
                    shown(&new_formation.1)
                ));
            }
            let json = |(processes, release_command): &(_, _)| {
                json!({"processes": processes, "release_command": release_command})
            };
            json!({"from": json(&old_formation), "to": json(&new_formation)})
        });
        let (mut added, mut removed, mut changed) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (key, value) in &new.config {
            match old.config.get(key) {
                None => {
                    lines.push(format!("+ {key}={}", env_value(value.display())));
                    added.insert(key.as_str(), value.display().to_string());
                }
                Some(was) if was != value => {
                    lines.push(format!(
                        "~ {key}: {} → {}",
                        env_value(was.display()),
                        env_value(value.display())
                    ));
                    changed.insert(
                        key.as_str(),
                        json!({"from": was.display(), "to": value.display()}),
                    );
                }
                Some(_) => {}
            }
        }
        for (key, value) in &old.config {
            if !new.config.contains_key(key) {
                lines.push(format!("- {key}={}", env_value(value.display())));
                removed.insert(key.as_str(), value.display().to_string());
            }
        }
        Diff {
            app: app.clone(),
            env: env.clone(),
            from,
            to,
            image,
            config: json!({"added": added, "removed": removed, "changed": changed}),
            lines,
            formation,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "app": self.app, "env": self.env, "from": self.from.get(), "to": self.to.get(),
            "image": self.image, "config": self.config,
            // issue 14: null when both builds run the same processes.
            "formation": self.formation,
        })
    }

    /// One line per change (values as a `.env` file holds them), or one saying there is none.
    pub fn human(&self) -> String {
        if self.lines.is_empty() {
            return format!(
                "{} and {} have the same build and config\n",
                self.from, self.to
            );
        }
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// At most `most` change lines on one line, `; `-separated, and how many more there are: a
    /// chat reply's summary (issue 12).
    pub fn summary(&self, most: usize) -> String {
        if self.lines.is_empty() {
            return "same build and config".into();
        }
        let mut out = self
            .lines
            .iter()
            .take(most)
            .map(|line| short_digests(line))
            .collect::<Vec<_>>()
            .join("; ");
        if self.lines.len() > most {
            out.push_str(&format!("; and {} more", self.lines.len() - most));
        }
        out
    }
}

/// `line` with each `sha256:` digest cut to its first 12 hex digits, as status shows images.
fn short_digests(line: &str) -> String {
    const MARK: &str = "sha256:";
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(MARK) {
        let (before, from) = rest.split_at(at + MARK.len());
        out.push_str(before);
        let hex = from.bytes().take_while(u8::is_ascii_hexdigit).count();
        let keep = if hex == 64 { 12 } else { hex };
        out.push_str(&from[..keep]);
        rest = &from[hex..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_summary_shortens_digests_and_counts_what_it_leaves_out() {
        let digest = |c: char| c.to_string().repeat(64);
        let diff = Diff {
            app: "api".parse().unwrap(),
            env: "production".parse().unwrap(),
            from: ReleaseVersion::FIRST,
            to: ReleaseVersion::FIRST.next(),
            image: None,
            config: Value::Null,
            lines: vec![
                format!(
                    "image: r/api@sha256:{} → r/api@sha256:{}",
                    digest('a'),
                    digest('b')
                ),
                "+ A=1".into(),
                "- B=2".into(),
                "~ C: 3 → 4".into(),
            ],
            formation: None,
        };
        assert_eq!(
            diff.summary(3),
            "image: r/api@sha256:aaaaaaaaaaaa → r/api@sha256:bbbbbbbbbbbb; + A=1; - B=2; and 1 more"
        );
        assert_eq!(short_digests("sha256:abc"), "sha256:abc", "not a digest");
    }

    fn release(config: &[(&str, &str)]) -> Release {
        Release {
            version: ReleaseVersion::FIRST,
            kind: hoist_engine::ReleaseKind::Config,
            build: None,
            config: config
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), ConfigValue::Plain(v.to_string())))
                .collect(),
            source: None,
            rollback_to: None,
            description: String::new(),
        }
    }

    proptest! {
        /// `diff` prints one line per added, removed or changed key, whatever the values hold,
        /// and never a control character.
        #[test]
        fn diff_lines_are_one_per_key_without_control(
            old in any::<String>(),
            new in any::<String>(),
            added in "(?s).{0,80}",
        ) {
            let (app, env): (AppName, EnvName) = ("web".parse().unwrap(), "staging".parse().unwrap());
            let v1 = ReleaseVersion::FIRST;
            let from = release(&[("A", &old), ("GONE", "x\ny")]);
            let to = release(&[("A", &new), ("NEW", &added)]);
            let text = Diff::between(&app, &env, (v1, &from), (v1, &to)).human();
            let expected = if old == new { 2 } else { 3 };
            prop_assert_eq!(text.lines().count(), expected, "{}", text);
            prop_assert!(
                !text.chars().any(|c| c != '\n' && crate::text::is_unsafe(c)),
                "{:?}",
                text
            );
        }
    }
}
