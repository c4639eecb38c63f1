//! Runs one parsed command line: validates the arguments into domain values (before touching the
//! store, so bad input costs nothing and appends nothing), calls the engine, prints the result.

use crate::backend::{self, OpenMode};
use crate::cli::*;
use crate::error::CliError;
use crate::output::{
    env_value, escape, out, outln, print_json, print_json_line, short_image, stdout_closed, table,
    timestamp, ReleaseView, StatusView,
};
use chrono::{DateTime, Duration as Span, Utc};
use hoist_engine::chain::ChainVerifier;
use hoist_engine::import::Importer;
use hoist_engine::secrets::SecretKey;
use hoist_engine::service::{self, execute, CommandContext, Executed};
use hoist_engine::store::EventStore;
use hoist_engine::{
    Action, Actor, AppName, AppState, Artifact, BuildId, Command as DomainCommand, ConfigKey,
    ConfigValue, EnvName, Envelope, Event, EventHash, ImageRef, Principal, Recorded,
    ReleaseVersion, Scope,
};
use hoist_projections::audit::{AuditEntry, AuditQuery, KINDS};
use hoist_projections::model::AppStatus;
use hoist_projections::store::ProjectionStore;
use hoist_stores::AnyStore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::PathBuf;

/// How many commits one read of the whole log asks for.
const PAGE: usize = 10_000;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx { global: cli.global };
    match cli.command {
        Command::Apps(AppsCommand::Create { app, envs }) => {
            let app: AppName = app.parse()?;
            let pipeline = envs
                .iter()
                .map(|e| e.parse())
                .collect::<Result<Vec<EnvName>, _>>()?;
            let executed = ctx
                .mutate(&app, DomainCommand::CreateApp { pipeline })
                .await?;
            if ctx.global.json {
                print_json(&AppView::new(&app, &executed.state));
            } else {
                let pipeline: Vec<&str> = executed
                    .state
                    .pipeline
                    .iter()
                    .map(EnvName::as_str)
                    .collect();
                outln!("Created app {app} with pipeline {}", pipeline.join(" → "));
            }
        }
        Command::Apps(AppsCommand::List) => {
            let store = ctx.open_existing().await?;
            let mut apps = Vec::new();
            for app in store.apps().await? {
                if let Some(state) = app_with_history(&store, &app).await? {
                    apps.push((app, state));
                }
            }
            if ctx.global.json {
                print_json(
                    &apps
                        .iter()
                        .map(|(app, state)| AppView::new(app, state))
                        .collect::<Vec<_>>(),
                );
            } else if apps.is_empty() {
                outln!("No apps yet: `hoist apps create APP`");
            } else {
                out!(
                    "{}",
                    table(
                        ["APP", "PIPELINE", "CREATED"],
                        apps.iter().map(|(app, state)| [
                            app.to_string(),
                            state
                                .pipeline
                                .iter()
                                .map(EnvName::as_str)
                                .collect::<Vec<_>>()
                                .join(" → "),
                            state.created_at.map(timestamp).unwrap_or_default(),
                        ])
                    )
                );
            }
        }
        Command::Apps(AppsCommand::Show { app }) => {
            let app: AppName = app.parse()?;
            let state = ctx.existing_app(&app, None).await?;
            if ctx.global.json {
                print_json(&AppView::new(&app, &state));
            } else {
                let view = AppView::new(&app, &state);
                outln!(
                    "app:      {app}\npipeline: {}\ncreated:  {}\n",
                    view.pipeline.join(" → "),
                    view.created_at.unwrap_or_default()
                );
                print_status(&StatusView::new(&app, &state));
                if !state.builds.is_empty() {
                    outln!();
                    out!(
                        "{}",
                        table(
                            ["BUILD", "IMAGE", "COMMIT", "NOTE"],
                            state.builds.values().map(|b| [
                                b.id.to_string(),
                                b.image.to_string(),
                                b.commit.clone().unwrap_or_default(),
                                b.note.clone().unwrap_or_default()
                            ])
                        )
                    );
                }
            }
        }
        Command::Builds(BuildsCommand::Register {
            app,
            image,
            commit,
            note,
        }) => {
            let app: AppName = app.parse()?;
            let image: ImageRef = image.parse()?;
            let id = image.build_id();
            let executed = ctx
                .mutate(
                    &app,
                    DomainCommand::RegisterBuild {
                        image,
                        commit,
                        note,
                    },
                )
                .await?;
            let build = &executed.state.builds[&id];
            let registered = !executed.events.is_empty();
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "app": app, "id": build.id, "image": build.image, "commit": build.commit, "note": build.note,
                    "registered": registered,
                }));
            } else if registered {
                outln!("Registered build {} of {app}: {}", build.id, build.image);
            } else {
                outln!(
                    "Build {} of {app} was already registered: {}",
                    build.id,
                    build.image
                );
            }
        }
        Command::Deploy(args) => {
            let (app, env) = args.target.parse()?;
            let artifact = match (args.image, args.build) {
                (Some(image), None) => Artifact::Image(image.parse()?),
                (None, Some(build)) => Artifact::Build(build.parse::<BuildId>()?),
                _ => unreachable!("clap requires exactly one of --image and --build"),
            };
            ctx.release(
                &app,
                DomainCommand::Deploy {
                    env: env.clone(),
                    artifact,
                },
            )
            .await?;
        }
        Command::Config(ConfigCommand::Set {
            target,
            pairs,
            secret,
        }) => {
            let (app, env) = target.parse()?;
            let mut parsed = Vec::with_capacity(pairs.len());
            for pair in &pairs {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    CliError::rejected(format!("invalid config pair {pair:?}: must be KEY=VALUE"))
                })?;
                parsed.push((key.parse::<ConfigKey>()?, value.to_string()));
            }
            let sealer = if secret {
                // The log names the key its secrets are sealed with: only a store without
                // secrets gets a new key.
                let store = service::store_secrets(&ctx.open().await?, &app).await?;
                let path = secret_key_path()?;
                Some(SecretKey::for_sealing(&path, &store).map_err(CliError::rejected)?)
            } else {
                None
            };
            let values = parsed
                .into_iter()
                .map(|(key, value)| {
                    let value = match &sealer {
                        Some(sealer) => ConfigValue::Sealed(sealer.seal(key.as_str(), &value)),
                        None => ConfigValue::Plain(value),
                    };
                    (key, value)
                })
                .collect();
            ctx.release(
                &app,
                DomainCommand::SetConfig {
                    env: env.clone(),
                    values,
                },
            )
            .await?;
        }
        Command::Config(ConfigCommand::Unset { target, keys }) => {
            let (app, env) = target.parse()?;
            let keys = keys
                .iter()
                .map(|k| k.parse())
                .collect::<Result<BTreeSet<ConfigKey>, _>>()?;
            ctx.release(
                &app,
                DomainCommand::UnsetConfig {
                    env: env.clone(),
                    keys,
                },
            )
            .await?;
        }
        Command::Config(ConfigCommand::Get { target, reveal }) => {
            let (app, env) = target.parse()?;
            let state = ctx.existing_app(&app, None).await?;
            let env_state = env_of(&app, &state, &env)?;
            let current = env_state.current();
            let config = current
                .map(|r| r.release.config.clone())
                .unwrap_or_default();
            let opener = if reveal && config.values().any(|v| matches!(v, ConfigValue::Sealed(_))) {
                Some(opening_key(&config)?)
            } else {
                None
            };
            let mut shown = BTreeMap::new();
            for (key, value) in &config {
                let text = match (value, &opener) {
                    (ConfigValue::Sealed(sealed), Some(opener)) => opener
                        .open(key.as_str(), sealed)
                        .map_err(CliError::rejected)?,
                    _ => value.display().to_string(),
                };
                shown.insert(key.as_str(), text);
            }
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "app": app, "env": env, "version": current.map(|r| r.release.version.get()), "config": shown,
                }));
            } else if shown.is_empty() {
                outln!("{app}/{env} has no config");
            } else {
                for (key, value) in shown {
                    outln!("{key}={}", env_value(&value));
                }
            }
        }
        Command::Promote(args) => {
            let app: AppName = args.app.parse()?;
            let from: EnvName = args.from.parse()?;
            let to = args.to.map(|t| t.parse::<EnvName>()).transpose()?;
            let executed = ctx
                .mutate(&app, DomainCommand::Promote { from, to })
                .await?;
            ctx.print_created_release(&app, &executed);
        }
        Command::Rollback(args) => {
            let (app, env) = args.target.parse()?;
            let to = args.to.map(|v| v.parse::<ReleaseVersion>()).transpose()?;
            ctx.release(
                &app,
                DomainCommand::Rollback {
                    env: env.clone(),
                    to,
                },
            )
            .await?;
        }
        Command::Releases(args) => {
            let (app, env) = args.target.parse()?;
            let at = args
                .at
                .as_deref()
                .map(|t| parse_time("--at", t))
                .transpose()?;
            let limit = args.limit.unwrap_or(usize::MAX);
            let records: Vec<hoist_engine::ReleaseRecord> = match at {
                // As of a past time: by replay of the app's events up to it.
                Some(at) => {
                    let state = ctx.existing_app(&app, Some(at)).await?;
                    let env_state = env_of(&app, &state, &env)?;
                    env_state
                        .releases
                        .iter()
                        .rev()
                        .take(limit)
                        .cloned()
                        .collect()
                }
                None => {
                    let store = ctx.open_existing().await?;
                    let mut models = crate::models::caught_up(&ctx.global, &store).await?;
                    let status = existing_status(&models, &app)?;
                    if !status.envs.contains_key(&env) {
                        return Err(not_in_pipeline(&app, &status.pipeline, &env));
                    }
                    models.releases(&store, &app, &status, &env, limit).await?
                }
            };
            let releases: Vec<ReleaseView> = records
                .iter()
                .map(|r| ReleaseView::new(&app, &env, r))
                .collect();
            if ctx.global.json {
                print_json(&releases);
            } else if releases.is_empty() {
                outln!("{app}/{env} has no releases yet");
            } else {
                out!(
                    "{}",
                    table(
                        ["VERSION", "KIND", "IMAGE", "DESCRIPTION", "BY", "AT"],
                        releases.iter().map(|r| [
                            format!("v{}", r.version),
                            r.kind.to_string(),
                            short_image(r.image).to_string(),
                            r.description.to_string(),
                            r.actor.to_string(),
                            r.at.clone()
                        ])
                    )
                );
            }
        }
        Command::Status(args) => {
            let app: AppName = args.app.parse()?;
            let at = args
                .at
                .as_deref()
                .map(|t| parse_time("--at", t))
                .transpose()?;
            let (state, status);
            let view = match at {
                // As of a past time: by replay of the app's events up to it.
                Some(at) => {
                    state = ctx.existing_app(&app, Some(at)).await?;
                    StatusView::new(&app, &state)
                }
                None => {
                    let store = ctx.open_existing().await?;
                    let models = crate::models::caught_up(&ctx.global, &store).await?;
                    backend::warn_quarantined(&store);
                    status = existing_status(&models, &app)?;
                    StatusView::of_model(&app, &status)
                }
            };
            if ctx.global.json {
                print_json(&view);
            } else {
                print_status(&view);
            }
        }
        Command::Diff(args) => {
            let (app, env) = args.target.parse()?;
            let from: ReleaseVersion = args.from.parse()?;
            let to: ReleaseVersion = args.to.parse()?;
            let state = ctx.existing_app(&app, None).await?;
            let env_state = env_of(&app, &state, &env)?;
            let record = |version: ReleaseVersion| {
                env_state.release(version).ok_or_else(|| {
                    let latest = env_state
                        .current()
                        .map_or("none".to_string(), |r| r.release.version.to_string());
                    CliError::rejected(format!(
                        "{app}/{env} has no release {version} (latest is {latest})"
                    ))
                })
            };
            let diff = Diff::between(&record(from)?.release, &record(to)?.release);
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "app": app, "env": env, "from": from.get(), "to": to.get(), "image": diff.image, "config": diff.config,
                }));
            } else {
                out!("{}", diff.human(from, to));
            }
        }
        Command::Lock(args) => {
            let (app, env) = args.target.parse()?;
            let executed = ctx
                .mutate(
                    &app,
                    DomainCommand::Lock {
                        env: env.clone(),
                        reason: args.reason,
                    },
                )
                .await?;
            ctx.print_lock(&app, &env, &executed.state);
        }
        Command::Unlock(args) => {
            let (app, env) = args.parse()?;
            let executed = ctx
                .mutate(&app, DomainCommand::Unlock { env: env.clone() })
                .await?;
            ctx.print_lock(&app, &env, &executed.state);
        }
        Command::Audit(AuditArgs {
            verify: Some(AuditCommand::Verify { app }),
            ..
        }) => {
            let app = app.map(|a| a.parse::<AppName>()).transpose()?;
            ctx.verify(app).await?;
        }
        Command::Audit(args) => ctx.audit(args).await?,
        Command::Events(EventsArgs {
            transfer: Some(EventsCommand::Export),
            ..
        }) => ctx.export().await?,
        Command::Events(EventsArgs {
            transfer: Some(EventsCommand::Import),
            ..
        }) => ctx.import().await?,
        Command::Events(args) => ctx.events(args.from, args.follow).await?,
        Command::Envs(command) => crate::envs::run(&ctx, command).await?,
        Command::Apply(args) => crate::reconcile::apply(&ctx, args).await?,
        Command::Serve(args) => crate::serve::serve(&ctx, args).await?,
        Command::Admin(AdminCommand::Rebuild) => crate::admin::rebuild(&ctx.global).await?,
        Command::Admin(AdminCommand::Check) => crate::admin::check(&ctx.global).await?,
        Command::Bench(args) => crate::bench::run(&ctx.global, &args)?,
        Command::Completions { shell } => crate::manual::completions(shell),
        Command::Man { command } => crate::manual::man(&command)?,
    }
    Ok(())
}

#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) global: GlobalArgs,
}

impl EnvArgs {
    pub(crate) fn parse(&self) -> Result<(AppName, EnvName), CliError> {
        Ok((self.app.parse()?, self.env.parse()?))
    }
}

impl Ctx {
    /// Opens the backend for a command that writes: a new embedded store is created.
    pub(crate) async fn open(&self) -> Result<AnyStore, CliError> {
        backend::open(&self.global).await
    }

    /// Opens the backend for a command that only reads: no store there is exit 4.
    pub(crate) async fn open_existing(&self) -> Result<AnyStore, CliError> {
        backend::open_as(&self.global, OpenMode::Existing).await
    }

    /// Who is allowed what: a command run directly on a store acts as the store's owner, who may
    /// do anything (CLI.md: "Identities, tokens and roles"). The engine authorizes every command
    /// with it before deciding; an import, which appends no command, is authorized here.
    pub(crate) fn principal(&self) -> Principal {
        Principal::Owner
    }

    pub(crate) fn actor(&self) -> Result<Actor, CliError> {
        if let Some(actor) = self
            .global
            .actor
            .clone()
            .or_else(|| std::env::var("HOIST_ACTOR").ok())
        {
            return Ok(actor.parse()?);
        }
        let git_email = std::process::Command::new("git")
            .args(["config", "user.email"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        git_email
            .or_else(|| std::env::var("USER").ok())
            .ok_or_else(|| {
                CliError::rejected("actor: unknown; set --actor or HOIST_ACTOR (or git user.email)")
            })?
            .parse()
            .map_err(CliError::from)
    }

    pub(crate) async fn mutate(
        &self,
        app: &AppName,
        command: DomainCommand,
    ) -> Result<Executed, CliError> {
        let mut command_ctx = CommandContext::new(self.actor()?);
        command_ctx.principal = self.principal();
        let store = self.open().await?;
        let executed = execute(&store, app, &command, &command_ctx).await?;
        warn_unknown(&executed.state);
        if !executed.events.is_empty() {
            crate::models::fold_new_events(&self.global, &store).await;
        }
        Ok(executed)
    }

    /// Runs a command that creates a release in `env`, and prints that release.
    async fn release(&self, app: &AppName, command: DomainCommand) -> Result<(), CliError> {
        let executed = self.mutate(app, command).await?;
        self.print_created_release(app, &executed);
        Ok(())
    }

    fn print_created_release(&self, app: &AppName, executed: &Executed) {
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
        let view = ReleaseView::new(app, env, record);
        if self.global.json {
            print_json(&view);
        } else {
            outln!(
                "Released {app}/{env} v{}: {}",
                view.version,
                escape(view.description)
            );
        }
    }

    fn print_lock(&self, app: &AppName, env: &EnvName, state: &AppState) {
        let lock = state.envs[env].lock.as_ref();
        if self.global.json {
            print_json(&serde_json::json!({
                "app": app, "env": env, "locked": lock.is_some(),
                "by": lock.map(|l| l.actor.as_str()), "reason": lock.map(|l| l.reason.as_str()),
            }));
        } else {
            match lock {
                Some(lock) => outln!("Locked {app}/{env}: {}", escape(&lock.reason)),
                None => outln!("Unlocked {app}/{env}"),
            }
        }
    }

    /// The app's state (as of `at`, when given), or a rejection naming the unknown app.
    pub(crate) async fn existing_app(
        &self,
        app: &AppName,
        at: Option<DateTime<Utc>>,
    ) -> Result<AppState, CliError> {
        let store = self.open_existing().await?;
        let events = service::load_events(&store, app).await?;
        let state = AppState::fold(
            events
                .iter()
                .filter(|r| at.is_none_or(|at| r.envelope.at <= at)),
        );
        warn_unknown(&state);
        if !state.exists() {
            return Err(match at {
                Some(at) => {
                    CliError::rejected(format!("app {app} did not exist yet at {}", timestamp(at)))
                }
                None => unknown_app(app),
            });
        }
        Ok(state)
    }

    /// Every event of the log (or of one app), in log order.
    async fn all_events(
        &self,
        store: &AnyStore,
        app: Option<&AppName>,
    ) -> Result<Vec<Recorded>, CliError> {
        if let Some(app) = app {
            return Ok(service::load_events(store, app).await?);
        }
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let page = store.read_from(from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            events.extend(service::decode_commits(&page)?);
        }
        Ok(events)
    }

    async fn audit(&self, args: AuditArgs) -> Result<(), CliError> {
        if let Some(kind) = &args.kind {
            if !KINDS.contains(&kind.as_str()) {
                return Err(CliError::rejected(format!(
                    "invalid kind {kind:?}: must be one of {}",
                    KINDS.join(", ")
                )));
            }
        }
        let query = AuditQuery {
            app: args.app.map(|a| a.parse()).transpose()?,
            env: args.env.map(|e| e.parse()).transpose()?,
            actor: args.actor,
            kind: args.kind,
            since: args
                .since
                .as_deref()
                .map(|t| parse_time("--since", t))
                .transpose()?,
            until: args
                .until
                .as_deref()
                .map(|t| parse_time("--until", t))
                .transpose()?,
        };
        let store = self.open_existing().await?;
        let mut models = crate::models::caught_up(&self.global, &store).await?;
        backend::warn_quarantined(&store);
        let entries: Vec<AuditEntry> = models
            .audit(&store, &query, args.limit.unwrap_or(usize::MAX))
            .await?;
        if self.global.json {
            print_json(&entries);
        } else if entries.is_empty() {
            outln!("No events match");
        } else {
            out!(
                "{}",
                table(
                    ["SEQ", "AT", "ACTOR", "APP", "ENV", "KIND", "SUMMARY"],
                    entries.iter().map(|e| [
                        e.seq.to_string(),
                        timestamp(e.at),
                        e.actor.to_string(),
                        e.app.to_string(),
                        e.env.as_ref().map_or("-".to_string(), EnvName::to_string),
                        e.kind.to_string(),
                        e.summary.to_string()
                    ])
                )
            );
        }
        Ok(())
    }

    async fn verify(&self, app: Option<AppName>) -> Result<(), CliError> {
        let store = self.open_existing().await?;
        let events = self.all_events(&store, app.as_ref()).await?;
        let mut verifier = ChainVerifier::default();
        for recorded in &events {
            verifier.check(recorded).map_err(CliError::rejected)?;
        }
        let apps: BTreeSet<&AppName> = events.iter().map(|r| &r.envelope.app).collect();
        if self.global.json {
            print_json(
                &serde_json::json!({"ok": true, "apps": apps.len(), "events": verifier.checked}),
            );
        } else {
            outln!(
                "Hash chains intact: {} apps, {} events",
                apps.len(),
                verifier.checked
            );
        }
        Ok(())
    }

    async fn events(&self, from: u64, follow: bool) -> Result<(), CliError> {
        let mut next = from.max(1);
        loop {
            // An embedded store is held only while reading, so writers are not locked out.
            let store = self.open_existing().await?;
            loop {
                let page = store.read_from(next, PAGE).await?;
                let Some(last) = page.last() else { break };
                next = last.seq + 1;
                for recorded in service::decode_commits(&page)? {
                    print_json_line(&EventLine::of(&recorded));
                }
                if stdout_closed().is_some() {
                    // Nobody reads any more (`hoist events | head`): the job is done.
                    return Ok(());
                }
            }
            if !follow {
                return Ok(());
            }
            let embedded = store.is_embedded();
            if embedded {
                drop(store);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn export(&self) -> Result<(), CliError> {
        let store = self.open_existing().await?;
        let mut from = 1;
        let mut damage;
        loop {
            let (page, damaged) = store.read_for_backup(from, PAGE).await?;
            damage = damaged;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for recorded in service::decode_commits(&page)? {
                if recorded.envelope.event.is_none() {
                    return Err(CliError::rejected(format!(
                        "event {} (log seq {}) has a kind this version of hoist does not know: upgrade hoist to export it",
                        recorded.envelope.id, recorded.seq
                    )));
                }
                print_json_line(&EventLine::of(&recorded));
            }
            if stdout_closed().is_some() {
                return Ok(());
            }
        }
        match damage {
            // Everything readable is out; the exit code says the backup is not the whole log.
            Some(damage) => Err(CliError::Unavailable(format!(
                "exported every record before the damage, not the whole log: {damage}"
            ))),
            None => Ok(()),
        }
    }

    async fn import(&self) -> Result<(), CliError> {
        // Read and check everything before appending anything, then append it as one batch: an
        // import is all or nothing.
        let mut importer = Importer::default();
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| CliError::rejected(format!("stdin line {n}: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: EventLine = serde_json::from_str(&line).map_err(|e| {
                CliError::rejected(format!("stdin line {n}: not an exported event: {e}"))
            })?;
            let recorded = Recorded {
                seq: parsed.seq,
                hash: parsed.hash,
                envelope: parsed.envelope,
            };
            importer
                .push(n, recorded)
                .map_err(|e| CliError::rejected(format!("stdin {e}")))?;
        }
        let checked = importer.finish();
        // Whole histories of any apps: as much as creating every app.
        hoist_engine::authorize(&self.principal(), &Action::Admin, &Scope::everything())
            .map_err(|denied| CliError::Denied(denied.to_string()))?;
        let store = self.open().await?;
        let listed: BTreeSet<AppName> = store.apps().await?.into_iter().collect();
        for app in checked.apps.intersection(&listed) {
            if app_with_history(&store, app).await?.is_some() {
                return Err(CliError::rejected(format!("app {app} already exists in this store: import needs a store without the imported apps")));
            }
        }
        checked.append(&store).await?;
        let (apps, commits, events) = (checked.apps.len(), checked.commits.len(), checked.events);
        if self.global.json {
            print_json(&serde_json::json!({"apps": apps, "commits": commits, "events": events}));
        } else {
            outln!(
                "Imported {events} events ({commits} commits) of {apps} apps; hash chains intact"
            );
        }
        Ok(())
    }
}

/// One line of `hoist events` and `events export`: the event with its place and hash.
#[derive(Debug, Serialize, Deserialize)]
struct EventLine {
    seq: u64,
    hash: EventHash,
    #[serde(flatten)]
    envelope: Envelope,
}

impl EventLine {
    fn of(recorded: &Recorded) -> Self {
        EventLine {
            seq: recorded.seq,
            hash: recorded.hash,
            envelope: recorded.envelope.clone(),
        }
    }
}

pub(crate) fn env_of<'a>(
    app: &AppName,
    state: &'a AppState,
    env: &EnvName,
) -> Result<&'a hoist_engine::EnvState, CliError> {
    state
        .env(env)
        .ok_or_else(|| not_in_pipeline(app, &state.pipeline, env))
}

/// `app`'s state, or `None` when the store lists it without history: a NATS subject that holds
/// only quarantined messages is no app (for `apps list`, nor for an import's "already exists").
async fn app_with_history<S: EventStore>(
    store: &S,
    app: &AppName,
) -> Result<Option<AppState>, CliError> {
    let state = service::load_app(store, app).await?;
    Ok((!state.pipeline.is_empty()).then_some(state))
}

fn not_in_pipeline(app: &AppName, pipeline: &[EnvName], env: &EnvName) -> CliError {
    let pipeline: Vec<&str> = pipeline.iter().map(EnvName::as_str).collect();
    CliError::rejected(format!(
        "env {env} is not in the pipeline of app {app} ({})",
        pipeline.join(", ")
    ))
}

/// The app's status read model, or a rejection naming the unknown app.
fn existing_status(models: &ProjectionStore, app: &AppName) -> Result<AppStatus, CliError> {
    let status = models
        .status(app)?
        .filter(AppStatus::exists)
        .ok_or_else(|| unknown_app(app))?;
    if status.skipped_unknown > 0 {
        crate::output::warn(&format!(
            "skipped {} events of kinds this version does not know; upgrade hoist",
            status.skipped_unknown
        ));
    }
    Ok(status)
}

fn unknown_app(app: &AppName) -> CliError {
    CliError::rejected(format!("app {app} does not exist (see `hoist apps list`)"))
}

fn warn_unknown(state: &AppState) {
    if state.skipped_unknown > 0 {
        crate::output::warn(&format!(
            "skipped {} events of kinds this version does not know; upgrade hoist",
            state.skipped_unknown
        ));
    }
}

fn print_status(view: &StatusView) {
    out!(
        "{}",
        table(
            ["ENV", "VERSION", "IMAGE", "APPLIED", "LOCKED", "RELEASED"],
            view.envs.iter().map(|(env, s)| [
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
                s.released_at.clone().unwrap_or_else(|| "-".to_string())
            ])
        )
    );
}

/// The key that opens the secrets of `config`: the one they name, never created.
pub(crate) fn opening_key(config: &hoist_engine::Config) -> Result<SecretKey, CliError> {
    let sealed_with = config.values().find_map(|value| match value {
        ConfigValue::Sealed(sealed) => hoist_engine::secrets::sealed_with(sealed),
        ConfigValue::Plain(_) => None,
    });
    SecretKey::for_opening(&secret_key_path()?, sealed_with).map_err(CliError::rejected)
}

pub(crate) fn secret_key_path() -> Result<PathBuf, CliError> {
    if let Some(path) = std::env::var_os("HOIST_SECRET_KEY_FILE") {
        return Ok(path.into());
    }
    dirs::config_dir()
        .map(|d| d.join("hoist").join("secret.key"))
        .ok_or_else(|| CliError::rejected("secret key: no config dir; set HOIST_SECRET_KEY_FILE"))
}

/// `T` of `--since`, `--until`, `--at`: RFC 3339, or a span ago (`90s`, `30m`, `12h`, `7d`, `2w`;
/// see [`crate::span`]).
fn parse_time(flag: &str, text: &str) -> Result<DateTime<Utc>, CliError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let invalid = || {
        CliError::rejected(format!("invalid {flag} {text:?}: must be RFC 3339 (2026-11-23T20:00:00Z) or a span ago like 7d, 12h, 30m"))
    };
    let span = crate::span::parse(text)
        .and_then(|span| Span::from_std(span).ok())
        .ok_or_else(invalid)?;
    Utc::now().checked_sub_signed(span).ok_or_else(invalid)
}

#[derive(Debug, Serialize)]
struct AppView<'a> {
    /// `app` and `envs`, as `status` prints them.
    #[serde(flatten)]
    status: StatusView<'a>,
    pipeline: Vec<&'a str>,
    created_at: Option<String>,
    builds: Vec<&'a hoist_engine::Build>,
}

impl<'a> AppView<'a> {
    fn new(app: &'a AppName, state: &'a AppState) -> Self {
        AppView {
            status: StatusView::new(app, state),
            pipeline: state.pipeline.iter().map(EnvName::as_str).collect(),
            created_at: state.created_at.map(timestamp),
            builds: state.builds.values().collect(),
        }
    }
}

/// What changed between two releases. Secrets compare by their sealed bytes: setting the same
/// secret again shows as changed, and its value is never shown.
struct Diff {
    image: Option<serde_json::Value>,
    config: serde_json::Value,
    lines: Vec<String>,
}

impl Diff {
    fn between(from: &hoist_engine::Release, to: &hoist_engine::Release) -> Self {
        let image_of = |r: &hoist_engine::Release| r.build.as_ref().map(|b| b.image.to_string());
        let (old_image, new_image) = (image_of(from), image_of(to));
        let mut lines = Vec::new();
        let image = (old_image != new_image).then(|| {
            lines.push(format!(
                "image: {} → {}",
                old_image.as_deref().unwrap_or("none"),
                new_image.as_deref().unwrap_or("none")
            ));
            serde_json::json!({"from": old_image, "to": new_image})
        });
        let (mut added, mut removed, mut changed) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (key, value) in &to.config {
            match from.config.get(key) {
                None => {
                    lines.push(format!("+ {key}={}", env_value(value.display())));
                    added.insert(key.as_str(), value.display().to_string());
                }
                Some(old) if old != value => {
                    lines.push(format!(
                        "~ {key}: {} → {}",
                        env_value(old.display()),
                        env_value(value.display())
                    ));
                    changed.insert(
                        key.as_str(),
                        serde_json::json!({"from": old.display(), "to": value.display()}),
                    );
                }
                Some(_) => {}
            }
        }
        for (key, value) in &from.config {
            if !to.config.contains_key(key) {
                lines.push(format!("- {key}={}", env_value(value.display())));
                removed.insert(key.as_str(), value.display().to_string());
            }
        }
        let config = serde_json::json!({"added": added, "removed": removed, "changed": changed});
        Diff {
            image,
            config,
            lines,
        }
    }

    fn human(&self, from: ReleaseVersion, to: ReleaseVersion) -> String {
        if self.lines.is_empty() {
            return format!("{from} and {to} have the same build and config\n");
        }
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn release(config: &[(&str, &str)]) -> hoist_engine::Release {
        hoist_engine::Release {
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
            let from = release(&[("A", &old), ("GONE", "x\ny")]);
            let to = release(&[("A", &new), ("NEW", &added)]);
            let text = Diff::between(&from, &to).human(ReleaseVersion::FIRST, ReleaseVersion::FIRST);
            let expected = if old == new { 2 } else { 3 };
            prop_assert_eq!(text.lines().count(), expected, "{}", text);
            prop_assert!(
                !text.chars().any(|c| c != '\n' && crate::output::is_unsafe(c)),
                "{:?}",
                text
            );
        }
    }
}
