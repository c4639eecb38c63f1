//! Whole histories out and in: `events` (follow the log), `events export` (a full-fidelity
//! backup, secrets still sealed) and `events import` (checked whole, appended all or nothing).

use crate::error::{Error, Result};
use crate::queries::{app_with_history, PAGE};
use crate::store::OpenMode;
use crate::views::{EventLine, Imported};
use crate::Hoist;
use hoist_engine::import::Importer;
use hoist_engine::service;
use hoist_engine::store::EventStore;
use hoist_engine::Principal;
use hoist_engine::{Action, AppName, Scope};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::Duration;

/// A page of [`Hoist::visible_events`].
#[derive(Debug, Clone)]
pub struct EventsPage {
    pub events: Vec<EventLine>,
    /// The log sequence the next page starts from.
    pub next: u64,
}

/// How often `events --follow` looks for new commits.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

impl Hoist {
    /// Hands every event from log sequence `from` on to `sink`, in log order; with `follow`,
    /// then every new one as it is appended, until `sink` breaks. An embedded store is held only
    /// while reading, so writers are not locked out.
    pub async fn events(
        &self,
        principal: &Principal,
        from: u64,
        follow: bool,
        sink: &mut dyn FnMut(&EventLine) -> ControlFlow<()>,
    ) -> Result<()> {
        self.allowed(principal, Action::View, &Scope::everything())?;
        let mut next = from.max(1);
        loop {
            let log = self.open_log(OpenMode::Existing).await?;
            loop {
                let page = log.read_from(next, PAGE).await?;
                let Some(last) = page.last() else { break };
                next = last.seq + 1;
                for recorded in service::decode_commits(&page)? {
                    if sink(&EventLine::of(&recorded)).is_break() {
                        return Ok(());
                    }
                }
            }
            if !follow {
                return Ok(());
            }
            if log.is_embedded() {
                drop(log);
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    /// One page of the events `principal` may view (the others skipped, not refused), from log
    /// sequence `from` on: at most `max_commits` commits read, each whole. `next` is where the
    /// following page starts, past every commit read (shown or not), so a follower moves on.
    pub async fn visible_events(
        &self,
        principal: &Principal,
        from: u64,
        max_commits: usize,
    ) -> Result<EventsPage> {
        let from = from.max(1);
        let log = self.open_log(OpenMode::Existing).await?;
        let page = log.read_from(from, max_commits.max(1)).await?;
        let next = page.last().map_or(from, |last| last.seq + 1);
        let mut viewable = BTreeMap::new();
        let mut events = Vec::new();
        for recorded in service::decode_commits(&page)? {
            let app = &recorded.envelope.app;
            let allowed = *viewable.entry(app.clone()).or_insert_with(|| {
                self.allowed(principal, Action::View, &Scope::app(app))
                    .is_ok()
            });
            if allowed {
                events.push(EventLine::of(&recorded));
            }
        }
        Ok(EventsPage { events, next })
    }

    /// Hands every event of the log to `sink`, for a backup. On an embedded log damaged in the
    /// middle, every event before the damage, then an error (unavailable) saying the backup is
    /// not the whole log.
    pub async fn export(
        &self,
        principal: &Principal,
        sink: &mut dyn FnMut(&EventLine) -> ControlFlow<()>,
    ) -> Result<()> {
        self.allowed(principal, Action::View, &Scope::everything())?;
        let log = self.open_log(OpenMode::Existing).await?;
        let mut from = 1;
        let mut damage;
        loop {
            let (page, damaged) = log.read_for_backup(from, PAGE).await?;
            damage = damaged;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for recorded in service::decode_commits(&page)? {
                if recorded.envelope.event.is_none() {
                    return Err(Error::rejected(format!(
                        "event {} (log seq {}) has a kind this version of hoist does not know: upgrade hoist to export it",
                        recorded.envelope.id, recorded.seq
                    )));
                }
                if sink(&EventLine::of(&recorded)).is_break() {
                    return Ok(());
                }
            }
        }
        match damage {
            Some(damage) => Err(Error::unavailable(format!(
                "exported every record before the damage, not the whole log: {damage}"
            ))),
            None => Ok(()),
        }
    }

    /// Restores exported lines (`(line number, text)`, in order) into this store: every line and
    /// hash checked before anything is appended, then appended as one batch. The imported apps
    /// must not exist here yet.
    pub async fn import(
        &self,
        principal: &Principal,
        lines: impl IntoIterator<Item = (usize, std::io::Result<String>)>,
    ) -> Result<Imported> {
        let mut importer = Importer::default();
        for (n, line) in lines {
            let line = line.map_err(|e| Error::rejected(format!("stdin line {n}: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: EventLine = serde_json::from_str(&line).map_err(|e| {
                Error::rejected(format!("stdin line {n}: not an exported event: {e}"))
            })?;
            importer
                .push(n, parsed.into_recorded())
                .map_err(|e| Error::rejected(format!("stdin {e}")))?;
        }
        let checked = importer.finish();
        // Whole histories of any apps: as much as creating every app.
        self.allowed(principal, Action::Admin, &Scope::everything())?;
        let log = self.open_log(OpenMode::Create).await?;
        let listed: BTreeSet<AppName> = log.apps().await?.into_iter().collect();
        for app in checked.apps.intersection(&listed) {
            if app.is_access() {
                if service::load_access(&log).await?.event_count > 0 {
                    return Err(Error::rejected("this store already holds identities, tokens or grants: import access events into a store without any"));
                }
            } else if app_with_history(&log, app).await?.is_some() {
                return Err(Error::rejected(format!("app {app} already exists in this store: import needs a store without the imported apps")));
            }
        }
        checked.append(&log).await?;
        Ok(Imported {
            apps: checked.apps.iter().filter(|app| !app.is_access()).count(),
            commits: checked.commits.len(),
            events: checked.events,
        })
    }
}
