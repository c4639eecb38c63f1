//! The human side of every answer: the sentences and tables a person reads, in a terminal or a
//! chat room, built once here so every text front end says the same thing. Free text from the
//! log is escaped ([`escape`]) and cut in tables ([`CELL_MAX`]); `--json` has it all. A table
//! fits a `width` when the front end has one (a terminal's), else each row is one line.

use crate::admin::Findings;
use crate::queries::Status;
use crate::reconcile::{Plan, Planned, Reconciled};
use crate::text::{env_value, escape};
use crate::views::{
    timestamp, AppView, ConfigShown, Imported, Rebuilt, ReleaseView, StatusView, Verified,
};
use crate::AuditEntry;
use hoist_engine::access::{GrantRecord, Token, Verdict};
use hoist_engine::{AppName, AppState, Build, EnvName, ImageRef, Lock, Target};
use std::fmt::Write as _;

/// A table's width: a terminal's columns, or `None` (never wrap).
pub type Width = Option<u16>;

/// A cell longer than this many characters is cut in a human table (with a note saying how much
/// was left out): a row stays one line however long a reason or note is; `--json` has it all.
pub const CELL_MAX: usize = 4096;

/// Columns at most this wide keep their width on a narrow terminal; wider ones wrap.
const SHORT_COLUMN: u16 = 32;

/// A plain text table: a header row, then rows, columns separated by two spaces (no borders,
/// no trailing blanks). Cells are escaped ([`escape`]) and cut at [`CELL_MAX`] characters. Given
/// a `width` (a terminal's), the table fits it, wrapping cells inside their column; `None` never
/// wraps (each row is one line).
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
    width: Width,
) -> String {
    use comfy_table::{ContentArrangement, ContentLineStyle, Table, TableStyle};
    let mut table = Table::new();
    // No borders; one blank of padding plus a blank junction: two spaces between columns.
    table.load_style(
        TableStyle::new()
            .header_lines(ContentLineStyle::none().junction(' '))
            .content_lines(ContentLineStyle::none().junction(' ')),
    );
    match width {
        Some(width) => {
            table
                .set_width(width)
                .set_content_arrangement(ContentArrangement::Dynamic);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(header.map(cell));
    for row in rows {
        table.add_row(row.map(|c| cell(&c)));
    }
    let widths = table.column_max_content_widths();
    for (column, width) in table.column_iter_mut().zip(widths) {
        column.set_padding((0, 1));
        // Short columns (versions, timestamps, names) never wrap: only long free text does.
        if width <= SHORT_COLUMN {
            column.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One table cell: escaped, and cut at [`CELL_MAX`] characters.
fn cell(text: &str) -> String {
    let text = escape(text);
    match text.char_indices().nth(CELL_MAX) {
        None => text.into_owned(),
        Some((cut, _)) => {
            let left_out = text[cut..].chars().count();
            format!("{}… ({left_out} more characters: see --json)", &text[..cut])
        }
    }
}

/// An image as a table shows it: its short form, or `-`.
pub fn short_image(image: Option<&ImageRef>) -> &str {
    image.map_or("-", ImageRef::short)
}

/// An app's pipeline: `staging → production`.
pub fn pipeline(state: &AppState) -> String {
    let pipeline: Vec<&str> = state.pipeline.iter().map(EnvName::as_str).collect();
    pipeline.join(" → ")
}

/// `apps create`.
pub fn created(app: &AppName, state: &AppState) -> String {
    format!("Created app {app} with pipeline {}\n", pipeline(state))
}

/// `apps list`.
pub fn apps(apps: &[(AppName, AppState)], width: Width) -> String {
    if apps.is_empty() {
        return "No apps yet: `hoist apps create APP`\n".into();
    }
    table(
        ["APP", "PIPELINE", "CREATED"],
        apps.iter().map(|(app, state)| {
            [
                app.to_string(),
                pipeline(state),
                state.created_at.map(timestamp).unwrap_or_default(),
            ]
        }),
        width,
    )
}

/// `apps show`: the app, its envs' status, its builds.
pub fn app(view: &AppView, width: Width) -> String {
    let mut text = format!(
        "app:      {}\npipeline: {}\ncreated:  {}\n\n",
        view.status.app,
        view.pipeline.join(" → "),
        view.created_at.as_deref().unwrap_or_default()
    );
    text.push_str(&status(&view.status, width));
    if !view.builds.is_empty() {
        text.push('\n');
        text.push_str(&table(
            ["BUILD", "IMAGE", "COMMIT", "NOTE"],
            view.builds.iter().map(|b| {
                [
                    b.id.to_string(),
                    b.image.to_string(),
                    b.commit.clone().unwrap_or_default(),
                    b.note.clone().unwrap_or_default(),
                ]
            }),
            width,
        ));
    }
    text
}

/// `builds register`.
pub fn build(app: &AppName, build: &Build, registered: bool) -> String {
    if registered {
        format!("Registered build {} of {app}: {}\n", build.id, build.image)
    } else {
        format!(
            "Build {} of {app} was already registered: {}\n",
            build.id, build.image
        )
    }
}

/// A release just created (`deploy`, `config set/unset`, `promote`, `rollback`).
pub fn released(view: &ReleaseView) -> String {
    format!(
        "Released {}/{} v{}: {}\n",
        view.app,
        view.env,
        view.version,
        escape(view.description)
    )
}

/// `config get`: one `KEY=value` line per key, values as a `.env` file holds them.
pub fn config(shown: &ConfigShown) -> String {
    if shown.config.is_empty() {
        return format!("{}/{} has no config\n", shown.app, shown.env);
    }
    let mut text = String::new();
    for (key, value) in &shown.config {
        let _ = writeln!(text, "{key}={}", env_value(value));
    }
    text
}

/// `releases`.
pub fn releases(app: &AppName, env: &EnvName, releases: &[ReleaseView], width: Width) -> String {
    if releases.is_empty() {
        return format!("{app}/{env} has no releases yet\n");
    }
    table(
        ["VERSION", "KIND", "IMAGE", "DESCRIPTION", "BY", "AT"],
        releases.iter().map(|r| {
            [
                format!("v{}", r.version),
                r.kind.to_string(),
                short_image(r.image).to_string(),
                r.description.to_string(),
                r.actor.to_string(),
                r.at.clone(),
            ]
        }),
        width,
    )
}

/// `status`: every env's current release, what its target last ran, its lock.
pub fn status(view: &StatusView, width: Width) -> String {
    table(
        ["ENV", "VERSION", "IMAGE", "APPLIED", "LOCKED", "RELEASED"],
        view.envs.iter().map(|(env, s)| {
            [
                env.to_string(),
                s.version.map_or("-".to_string(), |v| format!("v{v}")),
                short_image(s.image).to_string(),
                match (s.applied_version, s.health) {
                    (Some(v), Some(health)) => format!("v{v} {health}"),
                    _ => "-".to_string(),
                },
                match (s.locked_by, s.lock_reason) {
                    (Some(by), Some(reason)) => format!("by {by}: {reason}"),
                    _ => "no".to_string(),
                },
                s.released_at.clone().unwrap_or_else(|| "-".to_string()),
            ]
        }),
        width,
    )
}

impl Status {
    /// `status`, as a table; then each pin and drift, with why.
    pub fn human(&self, width: Width) -> String {
        let view = self.view();
        let mut text = status(&view, width);
        // issue 16
        for (env, shown) in &view.envs {
            if let Some(pin) = &shown.pinned {
                text.push_str(&format!(
                    "{env} is pinned by {} since {}: {} (no auto-promotion; `hoist unpin` to release it)\n",
                    pin.by,
                    pin.at,
                    escape(&pin.reason)
                ));
            }
            if shown.drifted {
                text.push_str(&format!(
                    "{env} has drifted from its release (see `hoist drift {} --env {env}`)\n",
                    view.app
                ));
            }
        }
        text
    }
}

/// `lock` and `unlock`.
pub fn lock(app: &AppName, env: &EnvName, lock: Option<&Lock>) -> String {
    match lock {
        Some(lock) => format!("Locked {app}/{env}: {}\n", escape(&lock.reason)),
        None => format!("Unlocked {app}/{env}\n"),
    }
}

/// `envs target`.
pub fn target(app: &AppName, env: &EnvName, target: &Target, changed: bool) -> String {
    let shown = escape(&target.to_string()).into_owned();
    if changed {
        format!("Target of {app}/{env}: {shown}\n")
    } else {
        format!("Target of {app}/{env} was already {shown}\n")
    }
}

/// `envs policy`.
pub fn policy(
    app: &AppName,
    env: &EnvName,
    auto_rollback: bool,
    pipeline: &hoist_engine::PipelinePolicy,
) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut text = format!("Auto-rollback of {app}/{env}: {}\n", on(auto_rollback));
    // issue 16
    text.push_str(&format!(
        "Auto-promotion into {app}/{env}: {}",
        on(pipeline.auto_promote)
    ));
    if pipeline.auto_promote {
        text.push_str(&format!(
            " (after {} healthy",
            crate::views::span(pipeline.after_secs)
        ));
        if let Some(verify) = &pipeline.verify {
            text.push_str(&format!(", verified by `{}`", escape(verify)));
        }
        text.push(')');
    }
    text.push_str(&format!(
        "\nSelf-heal of {app}/{env}: {}\n",
        on(pipeline.self_heal)
    ));
    text
}

// issue 16
/// `pin` and `unpin`.
pub fn pin(app: &AppName, env: &EnvName, pin: Option<&hoist_engine::Pin>) -> String {
    match pin {
        Some(pin) => format!("Pinned {app}/{env}: {}\n", escape(&pin.reason_text())),
        None => format!("Unpinned {app}/{env}\n"),
    }
}

/// `audit`.
pub fn audit(entries: &[AuditEntry], width: Width) -> String {
    if entries.is_empty() {
        return "No events match\n".into();
    }
    table(
        ["SEQ", "AT", "ACTOR", "APP", "ENV", "KIND", "SUMMARY"],
        entries.iter().map(|e| {
            [
                e.seq.to_string(),
                timestamp(e.at),
                match &e.via {
                    Some(via) => format!("{} via {via}", e.actor),
                    None => e.actor.to_string(),
                },
                e.app.to_string(),
                e.env.as_ref().map_or("-".to_string(), EnvName::to_string),
                e.kind.to_string(),
                e.summary.to_string(),
            ]
        }),
        width,
    )
}

impl Verified {
    /// `audit verify`.
    pub fn human(&self) -> String {
        format!(
            "Hash chains intact: {} apps, {} events\n",
            self.apps, self.events
        )
    }
}

impl Imported {
    /// `events import`.
    pub fn human(&self) -> String {
        let Imported {
            apps,
            commits,
            events,
        } = self;
        format!("Imported {events} events ({commits} commits) of {apps} apps; hash chains intact\n")
    }
}

impl Rebuilt {
    /// `admin rebuild`.
    pub fn human(&self) -> String {
        format!(
            "Rebuilt the read models from {} events ({} log entries) in {:.2} s: {} events/s\n",
            self.events, self.commits, self.seconds, self.events_per_s
        )
    }
}

impl Findings {
    /// `admin check`: notes, problems, and the verdict when there is none.
    pub fn human(&self) -> String {
        let mut text = String::new();
        for note in &self.notes {
            let _ = writeln!(text, "note: {note}");
        }
        for problem in &self.problems {
            let _ = writeln!(text, "problem: {}", problem.message);
        }
        if self.ok {
            let _ = writeln!(
                text,
                "Store OK: {} log entries, {} events, {} apps; hash chains intact; read models match the log",
                self.commits, self.events, self.apps
            );
        }
        text
    }
}

impl Reconciled {
    /// `apply`: the version, what came of it, and the detail on one line.
    pub fn human(&self) -> String {
        format!(
            "{}/{} v{}: {} ({})\n",
            self.app,
            self.env,
            self.version,
            self.outcome,
            escape(&self.detail.replace('\n', "; "))
        )
    }
}

impl Planned {
    /// `apply --dry-run`: the command an exec target would run, or the objects and changes.
    pub fn human(&self) -> String {
        match &self.plan {
            Plan::Exec { command } => {
                format!(
                    "would run `sh -c {}` with HOIST_VERSION={} and on stdin:\n{}\n",
                    escape(command),
                    self.record.release.version.get(),
                    serde_json::to_string_pretty(&self.exec_stdin()).expect("JSON serializes")
                )
            }
            Plan::Objects {
                shown,
                changes,
                with_secret,
            } => {
                // A manifests directory never receives the Secret: show what would be written.
                let mut text = crate::reconcile::to_yaml(shown, *with_secret);
                text.push('\n');
                for change in changes {
                    let _ = writeln!(
                        text,
                        "would {} {} {}",
                        change.action, change.kind, change.name
                    );
                }
                text
            }
        }
    }
}

// ---- identities, tokens, grants and chat links (`hoist access`) --------------------------------

/// `access token create`: the token on a line of its own, and that it is shown only now.
pub fn new_token(new: &crate::access::NewToken) -> String {
    let expires = new.expires_at.map_or("never expires".to_string(), |at| {
        format!("expires {}", timestamp(at))
    });
    let name = new
        .name
        .as_ref()
        .map(|n| format!(" ({})", escape(n)))
        .unwrap_or_default();
    format!(
        "Created token {}{name} for {} ({expires}).\nIt is shown this once (only its hash is kept): store it now.\n\n{}\n",
        new.id,
        escape(new.identity.as_str()),
        new.token
    )
}

/// `access token list`.
pub fn tokens(tokens: &[Token], width: Width) -> String {
    if tokens.is_empty() {
        return "No tokens: `hoist access token create IDENTITY`\n".into();
    }
    table(
        [
            "ID", "IDENTITY", "NAME", "CREATED", "BY", "EXPIRES", "REVOKED",
        ],
        tokens.iter().map(|t| {
            [
                t.id.to_string(),
                t.identity.to_string(),
                t.name.clone().unwrap_or_else(|| "-".into()),
                timestamp(t.created_at),
                t.created_by.to_string(),
                t.expires_at.map_or("never".into(), timestamp),
                t.revoked
                    .as_ref()
                    .map_or("no".into(), |r| format!("{} by {}", timestamp(r.at), r.by)),
            ]
        }),
        width,
    )
}

/// `access token revoke`.
pub fn token_revoked(token: &Token) -> String {
    format!(
        "Revoked token {} of {}: it opens nothing from now on\n",
        token.id,
        escape(token.identity.as_str())
    )
}

/// `access grant`.
pub fn granted(granted: &crate::access::Granted) -> String {
    let record = &granted.record;
    if granted.changed {
        format!(
            "Granted {} to {}\n",
            record.grant,
            escape(record.identity.as_str())
        )
    } else {
        format!(
            "{} already holds {} (granted by {} at {})\n",
            escape(record.identity.as_str()),
            record.grant,
            escape(record.granted_by.as_str()),
            timestamp(record.at)
        )
    }
}

/// `access revoke`.
pub fn revoked_grant(revoked: &crate::access::RevokedGrant) -> String {
    format!(
        "Revoked {} from {}\n",
        revoked.grant,
        escape(revoked.identity.as_str())
    )
}

/// `access list`.
pub fn grants(grants: &[GrantRecord], width: Width) -> String {
    if grants.is_empty() {
        return "No grants: `hoist access grant IDENTITY --role ROLE`\n".into();
    }
    let every = |name: Option<String>| name.unwrap_or_else(|| "*".into());
    table(
        ["IDENTITY", "ROLE", "APP", "ENV", "GRANTED BY", "AT"],
        grants.iter().map(|r| {
            [
                r.identity.to_string(),
                r.grant.role.to_string(),
                every(r.grant.app.as_ref().map(AppName::to_string)),
                every(r.grant.env.as_ref().map(EnvName::to_string)),
                r.granted_by.to_string(),
                timestamp(r.at),
            ]
        }),
        width,
    )
}

/// `access link` and `access unlink`.
pub fn linked(linked: &crate::access::Linked) -> String {
    match (&linked.link, &linked.was) {
        (Some(link), _) if linked.changed => {
            let identity = escape(link.identity.as_str());
            format!(
                "Linked {} to {identity}: in chat, they act as {identity} with its roles\n",
                linked.chat_id
            )
        }
        (Some(link), _) => format!(
            "{} was already linked to {}\n",
            linked.chat_id,
            escape(link.identity.as_str())
        ),
        (None, Some(was)) => format!(
            "Unlinked {} (it acted as {})\n",
            linked.chat_id,
            escape(was.as_str())
        ),
        (None, None) => format!("Unlinked {}\n", linked.chat_id),
    }
}

/// `access check`.
pub fn verdict(verdict: &Verdict) -> String {
    let word = if verdict.allowed { "allowed" } else { "denied" };
    format!("{word}: {}\n", escape(&verdict.because))
}

// ---- hooks (issue 11) --------------------------------------------------------------------------

/// `hooks add`: the hook, and its signing secret on a line of its own when made now.
pub fn hook_added(added: &crate::hooks::AddedHook) -> String {
    let mut out = format!(
        "Added hook {} ({}) sending to {}\n",
        escape(&added.name),
        added.format,
        escape(&added.url)
    );
    if let Some(secret) = &added.secret {
        out.push_str(
            "Its signing secret is shown this once (receivers verify webhook-signature with it): store it now.\n\n",
        );
        out.push_str(secret);
        out.push('\n');
    }
    out
}

/// `hooks list`.
pub fn hooks(hooks: &[crate::hooks::HookView], width: Width) -> String {
    if hooks.is_empty() {
        return "No hooks: `hoist hooks add NAME --url URL`\n".into();
    }
    table(
        ["NAME", "FORMAT", "URL", "SCOPE", "EVENTS", "STATE"],
        hooks.iter().map(|h| {
            let scope = match (&h.app, &h.env) {
                (Some(app), Some(env)) => format!("{app}/{env}"),
                (Some(app), None) => app.clone(),
                (None, Some(env)) => format!("*/{env}"),
                (None, None) => "*".into(),
            };
            let url = match &h.room {
                Some(room) => format!("{} {room}", h.url),
                None => h.url.clone(),
            };
            let state = match &h.disabled_reason {
                Some(reason) => format!("disabled: {reason}"),
                None => h.state.to_string(),
            };
            [
                h.name.clone(),
                h.format.clone(),
                url,
                scope,
                h.events.join(","),
                state,
            ]
        }),
        width,
    )
}

/// `hooks remove`.
pub fn hook_removed(name: &str) -> String {
    format!(
        "Removed hook {}: nothing more is sent to it\n",
        escape(name)
    )
}

/// `hooks test`.
pub fn pinged(pinged: &crate::hooks::Pinged) -> String {
    match (&pinged.status, &pinged.error) {
        (Some(status), None) => format!(
            "Sent a ping to hook {}: HTTP {status}\n",
            escape(&pinged.hook)
        ),
        (status, error) => format!(
            "The ping to hook {} failed{}: {}\n",
            escape(&pinged.hook),
            status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
            escape(error.as_deref().unwrap_or_default())
        ),
    }
}

/// `hooks deliveries`.
pub fn deliveries(deliveries: &[crate::hooks::DeliveryView], width: Width) -> String {
    if deliveries.is_empty() {
        return "No deliveries yet\n".into();
    }
    table(
        [
            "ID",
            "SEQ",
            "KIND",
            "STATE",
            "ATTEMPTS",
            "LAST",
            "NEXT ATTEMPT",
        ],
        deliveries.iter().map(|d| {
            let last = match (&d.last_status, &d.last_error) {
                (_, Some(error)) => error.clone(),
                (Some(status), None) => status.to_string(),
                (None, None) => "-".into(),
            };
            [
                d.id.clone(),
                d.seq.to_string(),
                d.kind.clone(),
                d.state.to_string(),
                d.attempts.to_string(),
                last,
                d.next_attempt_at.clone().unwrap_or_else(|| "-".into()),
            ]
        }),
        width,
    )
}

/// `hooks redeliver`.
pub fn redelivery(redelivery: &crate::hooks::Redelivery) -> String {
    format!(
        "Asked for delivery {} of hook {} again: `hoist serve` sends it now\n",
        redelivery.delivery,
        escape(&redelivery.hook)
    )
}

/// `hooks rotate`.
pub fn rotated(rotated: &crate::hooks::Rotated) -> String {
    let mut out = format!(
        "Rotated the signing secret of hook {}: deliveries carry both signatures until {}\n",
        escape(&rotated.name),
        rotated.previous_valid_until
    );
    if let Some(secret) = &rotated.secret {
        out.push_str("The new secret is shown this once: store it now.\n\n");
        out.push_str(secret);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tests::{assert_no_control, hostile_text};
    use proptest::prelude::*;

    /// Free text of any length, now and then past [`CELL_MAX`].
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![8 => hostile_text(40), 1 => hostile_text(CELL_MAX + 300)]
    }

    proptest! {
        // Cells past CELL_MAX make each case heavy: fewer cases, still every length class.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A table of any cells is one line per row (a header, then the rows), and none of its
        /// characters is a control character.
        #[test]
        fn tables_of_any_text_stay_one_line_per_row(
            rows in prop::collection::vec([field(), field(), field(), field()], 0..6),
        ) {
            let text = table(["ENV", "VERSION", "LOCKED", "NOTE"], rows.clone(), None);
            assert_no_control(&text);
            prop_assert_eq!(text.lines().count(), rows.len() + 1);
            prop_assert!(text.ends_with('\n'));
            for (line, row) in text.lines().skip(1).zip(&rows) {
                // Cells are cut, never dropped: a row's first cell starts its line.
                let first = escape(&row[0]);
                let shown: String = first.chars().take(CELL_MAX.min(20)).collect();
                prop_assert!(line.starts_with(shown.trim_end()), "{:?} / {:?}", line, shown);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Fitted to a terminal, cells wrap, still without a control character.
        #[test]
        fn tables_fitted_to_a_terminal_hold_no_control(
            rows in prop::collection::vec([hostile_text(60), hostile_text(60)], 0..4),
            width in 10u16..200,
        ) {
            assert_no_control(&table(["A", "B"], rows, Some(width)));
        }
    }

    #[test]
    fn tables_look_as_before() {
        let text = table(
            ["ENV", "VERSION", "LOCKED"],
            [
                ["staging".to_string(), "v12".to_string(), "no".to_string()],
                ["production".to_string(), "-".to_string(), String::new()],
            ],
            None,
        );
        assert_eq!(
            text,
            "ENV         VERSION  LOCKED\nstaging     v12      no\nproduction  -\n"
        );
    }

    #[test]
    fn a_cell_past_the_limit_is_cut_with_a_note() {
        let text = table(["NOTE"], [["x".repeat(70_000)]], None);
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.ends_with("… (65904 more characters: see --json)\n"),
            "{}",
            &text[..50]
        );
    }
}
