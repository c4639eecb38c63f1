//! The web UI's pages, rendered with maud from the CLI's JSON answers (CLI.md's shapes, read back
//! into the small structs below): what the page shows is what `hoist status`, `releases`,
//! `diff` and `audit` say, from the same `Hoist::answer`.
//!
//! Pure: the time "now", the signed-in identity, its CSRF token and what it may do come in as
//! arguments, so the HTML of a fixed history is a snapshot (`tests/web_pages.rs`). Every value
//! is escaped by maud; no secret value reaches a page (config values arrive redacted, tokens
//! never).

use super::assets::{CSS, SCRIPT_PATH};
use crate::audit::AuditParams;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;

/// `status --json`, its envs in pipeline order.
#[derive(Debug, Deserialize)]
pub struct Status {
    pub app: String,
    #[serde(deserialize_with = "ordered")]
    pub envs: Vec<(String, EnvStatus)>,
}

#[derive(Debug, Deserialize)]
pub struct EnvStatus {
    pub version: Option<u64>,
    pub image: Option<String>,
    pub locked: bool,
    pub locked_by: Option<String>,
    pub lock_reason: Option<String>,
    pub released_at: Option<String>,
    pub applied_version: Option<u64>,
    pub health: Option<String>,
    #[serde(default)]
    pub pinned: Option<Pin>,
    #[serde(default)]
    pub drifted: bool,
}

#[derive(Debug, Deserialize)]
pub struct Pin {
    pub reason: String,
    pub by: String,
}

/// One of `releases --json`.
#[derive(Debug, Deserialize)]
pub struct Release {
    pub version: u64,
    pub kind: String,
    pub image: Option<String>,
    pub config: BTreeMap<String, String>,
    pub description: String,
    pub actor: String,
    pub at: String,
    pub source: Option<Source>,
    pub rollback_to: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Source {
    pub env: String,
    pub version: u64,
}

/// One of `audit --json`.
#[derive(Debug, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub via: Option<String>,
    pub app: String,
    pub env: Option<String>,
    pub kind: String,
    pub summary: String,
}

/// `diff --json`.
#[derive(Debug, Deserialize)]
pub struct Diff {
    pub app: String,
    pub env: String,
    pub from: u64,
    pub to: u64,
    pub image: Option<Change>,
    pub config: ConfigDiff,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ConfigDiff {
    pub added: BTreeMap<String, String>,
    pub changed: BTreeMap<String, Change>,
    pub removed: BTreeMap<String, String>,
}

/// A JSON object read as its pairs in the order written (the status' pipeline order).
fn ordered<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, EnvStatus)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, EnvStatus)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of envs")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Pairs)
}

/// Who is looking, and what every page needs of them.
pub struct Viewer<'a> {
    pub identity: &'a str,
    pub csrf: &'a str,
    pub now: DateTime<Utc>,
}

/// What the viewer may do on one env (from the one authorizer's rule; the server checks again
/// when the form is posted).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    pub rollback: bool,
    pub lock: bool,
    /// Promote into this env (from the one before it).
    pub promote_into: bool,
}

/// Where the page's live part is refreshed from: events of one app, or of any.
pub enum Live<'a> {
    App(&'a str),
    AnyApp,
    /// A past state (`?at=`) or a form: never refreshed.
    Static,
}

fn page(title: &str, viewer: Option<&Viewer>, live: Live, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hoist" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    strong { a href="/" { "hoist" } }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Main" {
                            a href="/" { "Pipelines" }
                            a href="/audit" { "Audit" }
                        }
                        span.who {
                            "Signed in as " (viewer.identity) " "
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                @match live {
                    Live::App(app) => main #live data-app=(app) { (body) },
                    Live::AnyApp => main #live { (body) },
                    Live::Static => main #live data-static { (body) },
                }
                @if viewer.is_some() {
                    script src=(SCRIPT_PATH) defer {}
                }
            }
        }
    }
}

/// `sha256:` and the digest's first 12 hex digits (what the CLI's tables show).
pub fn digest_prefix(image: &str) -> &str {
    match image.find("@sha256:") {
        Some(at) => {
            let digest = &image[at + 1..];
            &digest[..digest.len().min("sha256:".len() + 12)]
        }
        None => image,
    }
}

/// "3 min ago": the span between an RFC 3339 time and now, roughly.
pub fn ago(at: &str, now: DateTime<Utc>) -> String {
    let Ok(at) = DateTime::parse_from_rfc3339(at) else {
        return at.to_string();
    };
    let seconds = (now - at.with_timezone(&Utc)).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86400),
    }
}

fn health(env: &EnvStatus) -> Markup {
    match (env.health.as_deref(), env.applied_version) {
        (Some("failed"), Some(v)) => html! { span.badge.bad { "failed" } " (v" (v) ")" },
        (Some("healthy"), Some(v)) => html! { span.badge.good { "healthy" } " (v" (v) ")" },
        (Some(outcome), Some(v)) => html! { span.badge { (outcome) } " (v" (v) ")" },
        _ => html! { span.muted { "not applied yet" } },
    }
}

fn time(at: &str, now: DateTime<Utc>) -> Markup {
    html! { time datetime=(at) title=(at) { (ago(at, now)) } }
}

/// Where an env's timeline is.
pub fn env_path(app: &str, env: &str) -> String {
    format!("/apps/{app}/envs/{env}")
}

/// The time-travel form and, when `at` is set, the notice that this is the past.
fn time_travel(action: &str, at: Option<&str>) -> Markup {
    html! {
        form.filters method="get" action=(action) {
            label { "As of (RFC 3339 or a span back, like 2h)"
                input type="text" name="at" value=[at] placeholder="now";
            }
            button type="submit" { "Show" }
            @if at.is_some() { a href=(action) { "Back to now" } }
        }
        @if let Some(at) = at {
            p.notice role="status" { "As it was at " strong { (at) } ": a past state, without actions." }
        }
    }
}

/// The apps overview: each app's pipeline, envs side by side.
pub fn pipelines(viewer: &Viewer, apps: &[(Status, Vec<Allowed>)], at: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Pipelines" }
        (time_travel("/", at))
        @if apps.is_empty() {
            p { "No apps you may view yet." }
        }
        @for (status, allowed) in apps {
            section aria-labelledby=(format!("app-{}", status.app)) {
                h2 id=(format!("app-{}", status.app)) { (status.app) }
                ol.pipeline {
                    @for (i, (env, shown)) in status.envs.iter().enumerate() {
                        li {
                            h3 { a href=(env_path(&status.app, env)) { (env) } }
                            (env_card(shown, viewer.now))
                            @if at.is_none() {
                                @let previous = i.checked_sub(1).and_then(|p| status.envs.get(p));
                                @if let (Some((from, from_status)), true) = (previous, allowed.get(i).is_some_and(|a| a.promote_into)) {
                                    @if from_status.version.is_some() {
                                        a.button href=(format!("/apps/{}/promote?from={}", status.app, from)) {
                                            "Promote " (from) " v" (from_status.version.unwrap_or(0)) " here…"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let live = if at.is_some() {
        Live::Static
    } else {
        Live::AnyApp
    };
    page("Pipelines", Some(viewer), live, body)
}

fn env_card(env: &EnvStatus, now: DateTime<Utc>) -> Markup {
    html! {
        dl {
            dt { "Release" }
            dd { @match env.version { Some(v) => strong { "v" (v) }, None => span.muted { "none yet" } } }
            dt { "Image" }
            dd { @match &env.image { Some(image) => code title=(image) { (digest_prefix(image)) }, None => "-" } }
            dt { "Health" }
            dd { (health(env)) }
            dt { "Released" }
            dd { @match &env.released_at { Some(at) => (time(at, now)), None => "-" } }
            @if env.locked {
                dt { "Lock" }
                dd.warn {
                    span.badge { "locked" } " by " (env.locked_by.as_deref().unwrap_or("?"))
                    ": " (env.lock_reason.as_deref().unwrap_or(""))
                }
            }
            @if let Some(pin) = &env.pinned {
                dt { "Pin" }
                dd.warn { span.badge { "pinned" } " by " (pin.by) ": " (pin.reason) }
            }
            @if env.drifted {
                dt { "Drift" }
                dd.bad { span.badge { "drifted" } " from its applied release" }
            }
        }
    }
}

/// How a release came to be, in words (rollbacks and auto-rollbacks marked, not only coloured).
fn kind_label(release: &Release) -> Markup {
    let auto = release.kind == "rollback" && release.description.starts_with("Auto-rollback");
    html! {
        @if auto {
            span.badge.warn { "↩ auto-rollback" }
        } @else if release.kind == "rollback" {
            span.badge.warn { "↩ rollback" }
        } @else {
            span.badge { (release.kind) }
        }
    }
}

/// An env's timeline: every release (newest first) with the rollouts recorded for it.
#[allow(clippy::too_many_arguments)]
pub fn timeline(
    viewer: &Viewer,
    app: &str,
    env: &str,
    status: &EnvStatus,
    releases: &[Release],
    rollouts: &BTreeMap<u64, Vec<AuditEntry>>,
    allowed: Allowed,
    at: Option<&str>,
) -> Markup {
    let path = env_path(app, env);
    let current = status.version;
    let actions = at.is_none();
    let body = html! {
        p { a href="/" { "Pipelines" } " / " (app) }
        h1 { (app) " / " (env) }
        (time_travel(&path, at))
        ol.pipeline { li { (env_card(status, viewer.now)) } }
        @if actions && (allowed.rollback || allowed.lock) {
            p {
                @if allowed.rollback && current.is_some_and(|v| v > 1) {
                    a.button.danger href=(format!("{path}/rollback")) { "Roll back to the previous release…" }
                    " "
                }
                @if allowed.lock {
                    @if status.locked {
                        a.button href=(format!("{path}/unlock")) { "Unlock…" }
                    } @else {
                        a.button href=(format!("{path}/lock")) { "Lock…" }
                    }
                }
            }
        }
        h2 { "Releases" }
        @if releases.is_empty() { p { "No release yet." } }
        div.scroll {
            table {
                thead { tr {
                    th { "Release" } th { "Kind" } th { "Description" } th.wide { "Image" }
                    th { "By" } th { "At" } th { span.muted { "Actions" } }
                } }
                tbody {
                    @for release in releases {
                        tr class=[(release.kind == "rollback").then_some("rollback")] {
                            td {
                                strong { "v" (release.version) }
                                @if current == Some(release.version) { " " span.badge.good { "current" } }
                            }
                            td { (kind_label(release)) }
                            td {
                                (release.description)
                                @if let Some(source) = &release.source {
                                    br; span.muted { "from " (source.env) " v" (source.version) }
                                }
                                @if let Some(to) = release.rollback_to {
                                    br; span.muted { "copy of v" (to) }
                                }
                                @if let Some(outcomes) = rollouts.get(&release.version) {
                                    ul.outcomes aria-label="Rollouts" {
                                        @for outcome in outcomes {
                                            li { (outcome_text(&outcome.summary)) " " span.muted { (time(&outcome.at, viewer.now)) } }
                                        }
                                    }
                                }
                            }
                            td.wide { @match &release.image { Some(image) => code title=(image) { (digest_prefix(image)) }, None => "-" } }
                            td { (release.actor) }
                            td { (time(&release.at, viewer.now)) }
                            td {
                                @if release.version > 1 {
                                    a href=(format!("{path}/diff?from={}&to={}", release.version - 1, release.version)) { "Diff" }
                                }
                                @if actions && allowed.rollback && current.is_some_and(|v| v != release.version) {
                                    " · " a href=(format!("{path}/rollback?to={}", release.version)) { "Roll back to this…" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let live = if at.is_some() {
        Live::Static
    } else {
        Live::App(app)
    };
    page(&format!("{app}/{env}"), Some(viewer), live, body)
}

/// A rollout's summary without its `env vN: ` prefix (the row already says which).
fn outcome_text(summary: &str) -> &str {
    summary.split_once(": ").map_or(summary, |(_, rest)| rest)
}

/// The version a rollout's audit summary (`staging v6: failed (exit 1)`) is about.
pub fn rollout_version(summary: &str) -> Option<u64> {
    let (head, _) = summary.split_once(": ")?;
    head.rsplit_once(" v")?.1.parse().ok()
}

/// What changed between two releases: the image and the config (secrets redacted).
pub fn diff(viewer: &Viewer, diff: &Diff) -> Markup {
    let path = env_path(&diff.app, &diff.env);
    let body = html! {
        p { a href="/" { "Pipelines" } " / " a href=(path) { (diff.app) " / " (diff.env) } }
        h1 { (diff.app) " / " (diff.env) ": v" (diff.from) " → v" (diff.to) }
        h2 { "Image" }
        @match &diff.image {
            Some(change) => p {
                code { (change.from.as_deref().unwrap_or("none")) } " → " code { (change.to.as_deref().unwrap_or("none")) }
            },
            None => p.muted { "Unchanged." },
        }
        h2 { "Config" }
        @if diff.config.added.is_empty() && diff.config.changed.is_empty() && diff.config.removed.is_empty() {
            p.muted { "Unchanged." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Key" } th { "Change" } th { "v" (diff.from) } th { "v" (diff.to) } } }
                tbody {
                    @for (key, value) in &diff.config.added {
                        tr { td { code { (key) } } td { "added" } td { "-" } td { code { (value) } } }
                    }
                    @for (key, change) in &diff.config.changed {
                        tr { td { code { (key) } } td { "changed" }
                            td { code { (change.from.as_deref().unwrap_or("")) } }
                            td { code { (change.to.as_deref().unwrap_or("")) } } }
                    }
                    @for (key, value) in &diff.config.removed {
                        tr { td { code { (key) } } td { "removed" } td { code { (value) } } td { "-" } }
                    }
                }
            } }
        }
    };
    page(
        &format!("{}/{} diff", diff.app, diff.env),
        Some(viewer),
        Live::Static,
        body,
    )
}

/// The audit trail with `hoist audit`'s filters.
pub fn audit(
    viewer: &Viewer,
    filters: &AuditParams,
    kinds: &[&str],
    entries: &[AuditEntry],
) -> Markup {
    let text = |name: &str, value: &Option<String>| {
        html! { label { (name) input type="text" name=(name) value=[value.as_deref()]; } }
    };
    let body = html! {
        h1 { "Audit" }
        form.filters method="get" action="/audit" {
            (text("app", &filters.app))
            (text("env", &filters.env))
            (text("actor", &filters.actor))
            label { "kind"
                select name="kind" {
                    option value="" { "any" }
                    @for kind in kinds {
                        option value=(kind) selected[filters.kind.as_deref() == Some(*kind)] { (kind) }
                    }
                }
            }
            (text("since", &filters.since))
            (text("until", &filters.until))
            label { "limit" input type="number" min="1" name="limit" value=[filters.limit]; }
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() { p { "Nothing recorded matches." } }
        div.scroll { table {
            thead { tr { th { "Seq" } th { "At" } th { "Actor" } th { "App" } th { "Env" } th { "Kind" } th { "Summary" } } }
            tbody {
                @for entry in entries {
                    tr {
                        td { (entry.seq) }
                        td { time datetime=(entry.at) { (entry.at) } }
                        td { (entry.actor) @if let Some(via) = &entry.via { span.muted { " via " (via) } } }
                        td { (entry.app) }
                        td { (entry.env.as_deref().unwrap_or("-")) }
                        td { @if entry.kind == "rollback" { span.badge.warn { "↩ rollback" } } @else { (entry.kind) } }
                        td { (entry.summary) }
                    }
                }
            }
        } }
    };
    page("Audit", Some(viewer), Live::AnyApp, body)
}

/// A confirmation step: what will happen, and the one button that does it.
pub struct Confirm<'a> {
    pub title: String,
    pub question: String,
    /// Where the form posts.
    pub action: String,
    /// Hidden fields besides the CSRF token.
    pub hidden: Vec<(&'a str, String)>,
    /// A required reason field (lock).
    pub reason: bool,
    pub button: &'a str,
    pub back: String,
}

pub fn confirm(viewer: &Viewer, confirm: &Confirm) -> Markup {
    let body = html! {
        h1 { (confirm.title) }
        form method="post" action=(confirm.action) {
            p { (confirm.question) }
            input type="hidden" name="csrf" value=(viewer.csrf);
            @for (name, value) in &confirm.hidden {
                input type="hidden" name=(name) value=(value);
            }
            @if confirm.reason {
                p { label { "Reason " input type="text" name="reason" required maxlength="500"; } }
            }
            p {
                button.danger type="submit" { (confirm.button) }
                " " a href=(confirm.back) { "Cancel" }
            }
        }
    };
    page(&confirm.title, Some(viewer), Live::Static, body)
}

/// The sign-in form; `notice` says why it is shown again.
pub fn sign_in(csrf: &str, next: &str, notice: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(notice) = notice { p.notice role="alert" { (notice) } }
        form method="post" action="/signin" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            p {
                label for="token" { "Token " span.muted { "(from " code { "hoist access token create" } ")" } }
                br;
                input #token type="password" name="token" autocomplete="off" required size="50";
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    page("Sign in", None, Live::Static, body)
}

/// A refusal or a failure, as a page: the message hoist gave, as one line.
pub fn failure(viewer: Option<&Viewer>, title: &str, message: &str, back: &str) -> Markup {
    let body = html! {
        h1 { (title) }
        p.notice.error role="alert" { (message) }
        p { a href=(back) { "Back" } }
    };
    page(title, viewer, Live::Static, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_digest_prefix_is_twelve_hex_digits() {
        let image = format!("registry.example/api@sha256:{}", "a".repeat(64));
        assert_eq!(digest_prefix(&image), "sha256:aaaaaaaaaaaa");
        assert_eq!(digest_prefix("no-digest"), "no-digest");
    }

    #[test]
    fn ago_rounds_down_to_the_largest_unit() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        assert_eq!(ago("2026-11-30T11:59:30Z", now), "30 s ago");
        assert_eq!(ago("2026-11-30T11:55:00Z", now), "5 min ago");
        assert_eq!(ago("2026-11-30T09:00:00Z", now), "3 h ago");
        assert_eq!(ago("2026-11-28T12:00:00Z", now), "2 d ago");
        assert_eq!(ago("2026-11-30T12:00:09Z", now), "0 s ago");
        assert_eq!(ago("not a time", now), "not a time");
    }

    #[test]
    fn a_rollout_summary_names_its_version() {
        assert_eq!(rollout_version("staging v6: failed (exit 1)"), Some(6));
        assert_eq!(rollout_version("production v12: healthy"), Some(12));
        assert_eq!(rollout_version("no version here"), None);
        assert_eq!(
            outcome_text("staging v6: failed (exit 1)"),
            "failed (exit 1)"
        );
    }

    #[test]
    fn rollbacks_and_auto_rollbacks_are_marked_in_words() {
        let release = |kind: &str, description: &str| Release {
            version: 6,
            kind: kind.into(),
            image: None,
            config: BTreeMap::new(),
            description: description.into(),
            actor: "hoist".into(),
            at: "2026-11-30T12:00:00Z".into(),
            source: None,
            rollback_to: Some(4),
        };
        let shown = |r: &Release| kind_label(r).into_string();
        assert!(
            shown(&release("rollback", "Auto-rollback to v4: v5 failed"))
                .contains("↩ auto-rollback")
        );
        assert!(shown(&release("rollback", "Rollback to v4")).contains("↩ rollback"));
        assert!(!shown(&release("deploy", "Deploy x")).contains('↩'));
    }

    #[test]
    fn status_envs_keep_their_pipeline_order() {
        let json = r#"{"app": "api", "envs": {"zeta": {"version": null, "image": null, "locked": false,
            "released_at": null, "applied_version": null, "health": null},
            "alpha": {"version": 2, "image": null, "locked": false, "released_at": null,
            "applied_version": null, "health": null}}}"#;
        let status: Status = serde_json::from_str(json).unwrap();
        let names: Vec<_> = status.envs.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }
}
