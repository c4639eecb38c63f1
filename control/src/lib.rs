//! hoist's one boundary: every front end (the CLI, the HTTP API, chat) calls this crate and
//! nothing below it. [`Hoist::open`] takes the settings; [`Hoist::execute`] runs a command as a
//! principal (authorize → decide → append → fold); the queries answer from the read models or by
//! replay; `views` are the JSON shapes of CLI.md; `reconcile` and `serve` drive the adapters.
//!
//! - `api`: every front end's commands as one `Request`, answered as JSON and human text;
//! - `config`: the settings, as given and validated;
//! - `access`: authenticating a bearer token (or a linked chat user) into a [`Caller`], and the
//!   access commands and questions (tokens, grants, chat links, `access check`);
//! - `error`: the one [`Error`], whose [`ErrorKind`] a front end maps to an exit code or status;
//! - `store`: opening the log and the read models;
//! - `queries`: apps, status, releases, audit, diff, config, verify, time travel;
//! - `transfer`: `events` (whole, or in pages of what a principal may view), `events export`,
//!   `events import`;
//! - `admin`: `admin rebuild` and `admin check`;
//! - `health`: the log's end and the read models' place in it, for probes and metrics;
//! - `reconcile`: one env's current release applied to its target, the outcome recorded;
//! - `serve`: the daemon's loops (log feed, resync, NATS claims);
//! - `workload` (and `bench` with the `bench` feature): the realistic history `hoist bench` and
//!   the criterion benches write, and the measurements beside raw baselines;
//! - `views`, `human`: every answer's JSON shape (CLI.md) and its sentences and tables;
//! - `text`, `time`: escaping free text, and times as people type them.
//!
//! **Architecture invariant**: nothing here knows of clap, terminals or HTTP (checked by
//! `tests/architecture.rs`).

pub mod access;
pub mod admin;
pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod chat;
pub mod config;
pub mod deliver;
pub mod error;
// issue 14
pub mod formation;
pub mod health;
pub mod hooks;
pub mod human;
pub mod matrix_bot;
pub mod pipeline; // issue 16
pub mod queries;
pub mod reconcile;
pub mod serve;
pub mod slack_socket; // issue 12
mod store;
pub mod text;
pub mod time;
pub mod transfer;
pub mod views;
pub mod workload;

pub use api::{Answer, Request};
pub use config::{Backend, Config, NatsSettings};
pub use error::{Error, ErrorKind, Result};
/// The domain, as front ends name it: commands, names, events.
pub use hoist_engine as engine;
pub use hoist_projections::audit::{AuditEntry, AuditQuery, KINDS as AUDIT_KINDS};

use config::Settings;
use hoist_engine::secrets::SecretKey;
use hoist_engine::service::{self, CommandContext, Executed};
use hoist_engine::{Actor, AppName, Command, ConfigKey, ConfigValue, Principal};
use std::sync::Arc;
use store::OpenMode;

/// Who runs a command: the principal its permission is checked for, the actor the log records,
/// and the front end it came through (`api`, `web`, `slack:TEAM/USER`, `matrix:@user:server`;
/// `None` for direct store access), which audit entries carry as `via`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub actor: Actor,
    pub via: Option<String>,
    /// The id of the command this call makes, when the front end must make it idempotent (a
    /// chat message seen again after a restart is the same command, stored once); else new.
    pub command_id: Option<uuid::Uuid>,
}

impl Caller {
    /// Direct access to the store: the store's owner, allowed everything (CLI.md, "Identities,
    /// tokens and roles"), acting as `actor`.
    pub fn owner(actor: Actor) -> Self {
        Caller {
            principal: Principal::Owner,
            actor,
            via: None,
            command_id: None,
        }
    }
}

type WarnSink = Arc<dyn Fn(&str) + Send + Sync>;

/// hoist, opened on one store. Cheap to clone; holds no store open between calls (an embedded
/// store is held only for the length of one call, so other processes keep working).
#[derive(Clone)]
pub struct Hoist {
    settings: Arc<Settings>,
    warn: WarnSink,
    hooks: ReconcileHooks,
    /// The access chain as last folded, shared by clones: `authenticate` reads only what is new.
    access: access::SharedAccess,
    /// Answers to queries at the log's current sequence, shared by clones.
    answers: api::AnswerCache,
    /// The HTTP client chat answers go out on (Slack's `response_url`), made on first use and
    /// shared by clones: one connection pool and one read of the platform's roots.
    chat_sender: Arc<std::sync::OnceLock<hoist_adapters::notify::Sender>>,
}

/// The crash-safety tests' hooks into reconciling, which a front end reads from its environment
/// (never the production path): see `reconcile::Context`.
#[derive(Debug, Clone, Default)]
pub struct ReconcileHooks {
    /// Stop forever right after an apply, before recording, having written the version here.
    pub pause_after_apply: Option<std::path::PathBuf>,
    /// How long recording an outcome keeps trying on NATS, instead of 30 s.
    pub record_patience: Option<std::time::Duration>,
    /// Stop forever right after a hook's send, before recording it, having written the
    /// delivery's id here (issue 11's crash test).
    pub pause_after_send: Option<std::path::PathBuf>,
}

impl Hoist {
    /// Validates the settings; opens nothing yet.
    pub fn open(config: Config) -> Result<Self> {
        Ok(Hoist {
            settings: Arc::new(Settings::of(config)?),
            warn: Arc::new(|_| {}),
            hooks: ReconcileHooks::default(),
            access: Default::default(),
            answers: Default::default(),
            chat_sender: Default::default(),
        })
    }

    /// The crash-safety tests' hooks, when the front end's environment sets them.
    pub fn with_reconcile_hooks(mut self, hooks: ReconcileHooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Where warnings go (what went wrong but did not fail the call: models folded again,
    /// skipped messages): the CLI prints them on stderr, the server logs them.
    pub fn on_warning(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.warn = Arc::new(sink);
        self
    }

    pub(crate) fn warn(&self, message: &str) {
        (self.warn)(message)
    }

    /// Whether the log is a NATS stream (else the embedded store).
    pub fn is_nats(&self) -> bool {
        self.settings.is_nats()
    }

    /// Replicas of what hoist creates on NATS (the stream, the claims); 1 on the embedded store.
    pub(crate) fn replicas(&self) -> usize {
        match &self.settings.log {
            config::Log::Nats(nats) => nats.replicas,
            config::Log::Embedded { .. } => 1,
        }
    }

    /// Runs `command` on `app` as `caller`: authorized, decided, appended (with optimistic
    /// retries), then folded into the read models. Returns the app after it and the events
    /// appended (none for a no-op).
    pub async fn execute(
        &self,
        caller: &Caller,
        app: &AppName,
        command: Command,
    ) -> Result<Executed> {
        let mut context = CommandContext::new(caller.actor.clone());
        context.principal = caller.principal.clone();
        context.via = caller.via.clone();
        if let Some(id) = caller.command_id {
            context.command_id = id;
        }
        self.execute_in(app, &command, &context).await
    }

    /// [`execute`](Self::execute) under a given command context (a machine's: a causation, a
    /// retried command id).
    pub(crate) async fn execute_in(
        &self,
        app: &AppName,
        command: &Command,
        context: &CommandContext,
    ) -> Result<Executed> {
        let log = self.open_log(OpenMode::Create).await?;
        // issue 15: decided from the app's snapshot and the commits after it.
        let snapshots = self.snapshots(&log)?;
        let (executed, unsaved) =
            service::execute_snapshotted(&log, &snapshots, app, command, context).await?;
        if let Some(why) = unsaved {
            self.warn(&format!("{why} (the next command folds a longer tail)"));
        }
        self.warn_unknown(executed.state.skipped_unknown);
        if !executed.events.is_empty() {
            self.fold_new_events(&log).await;
        }
        Ok(executed)
    }

    /// Seals `values` of `app` for `config set --secret`, with the key the store's secrets are
    /// sealed with (a store without secrets gets a new key).
    pub async fn seal(
        &self,
        app: &AppName,
        values: Vec<(ConfigKey, String)>,
    ) -> Result<Vec<(ConfigKey, ConfigValue)>> {
        let secrets = service::store_secrets(&self.open_log(OpenMode::Create).await?, app).await?;
        let sealer = SecretKey::for_sealing(&self.settings.secret_key_path()?, &secrets)
            .map_err(Error::rejected)?;
        Ok(values
            .into_iter()
            .map(|(key, value)| {
                let sealed = ConfigValue::Sealed(sealer.seal(key.as_str(), &value));
                (key, sealed)
            })
            .collect())
    }

    /// The key that opens the secrets of `config`: the one they name, never created.
    pub(crate) fn opening_key(&self, config: &hoist_engine::Config) -> Result<SecretKey> {
        let sealed_with = config.values().find_map(|value| match value {
            ConfigValue::Sealed(sealed) => hoist_engine::secrets::sealed_with(sealed),
            ConfigValue::Plain(_) => None,
        });
        SecretKey::for_opening(&self.settings.secret_key_path()?, sealed_with)
            .map_err(Error::rejected)
    }

    pub(crate) fn warn_unknown(&self, skipped: u64) {
        if skipped > 0 {
            self.warn(&format!(
                "skipped {skipped} events of kinds this version does not know; upgrade hoist"
            ));
        }
    }
}
