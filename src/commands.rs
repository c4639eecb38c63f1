//! Runs one parsed command line: turns the arguments into domain values (before touching the
//! store, so bad input costs nothing and appends nothing), calls `hoist_control`, prints.

use crate::cli::*;
use crate::output::{out, print_json, print_json_line, stdout_closed, warn, width};
use hoist_control::engine::service::Executed;
use hoist_control::engine::{
    Action, Actor, AppName, Artifact, BuildId, ChatId, Command as DomainCommand, ConfigKey,
    ConfigValue, EnvName, Event, Grant, ImageRef, Principal, ReleaseVersion, Role, Scope, Target,
    TokenId, ValidationError,
};
use hoist_control::human;
use hoist_control::reconcile::{Context, Options};
use hoist_control::time::{parse_from_now, parse_instant, parse_span};
use hoist_control::views::{self, AppView, ReleaseView};
use hoist_control::{AuditQuery, Backend, Caller, Config, Error, Hoist, NatsSettings};
use std::io::BufRead;
use std::ops::ControlFlow;

pub async fn run(cli: Cli) -> Result<(), Error> {
    // These touch no store: they need no settings either.
    match &cli.command {
        Command::Completions { shell } => {
            crate::manual::completions(*shell);
            return Ok(());
        }
        Command::Man { command } => return crate::manual::man(command),
        _ => {}
    }
    let ctx = Ctx::new(cli.global)?;
    let (hoist, owner, w) = (&ctx.hoist, &Principal::Owner, width());
    // One answer: its JSON shape under --json, else its human text.
    let show = |json: &dyn erased::Json, human: &dyn Fn() -> String| {
        if ctx.global.json {
            json.print();
        } else {
            out!("{}", human());
        }
    };
    match cli.command {
        Command::Apps(AppsCommand::Create { app, envs }) => {
            let app: AppName = app.parse()?;
            let pipeline = envs.iter().map(|e| e.parse()).collect::<Result<_, _>>()?;
            let state = ctx
                .execute(&app, DomainCommand::CreateApp { pipeline })
                .await?
                .state;
            show(&AppView::new(&app, &state), &|| {
                human::created(&app, &state)
            });
        }
        Command::Apps(AppsCommand::List) => {
            let apps = hoist.apps(owner).await?;
            let views: Vec<_> = apps.iter().map(|(a, s)| AppView::new(a, s)).collect();
            show(&views, &|| human::apps(&apps, w));
        }
        Command::Apps(AppsCommand::Show { app }) => {
            let app: AppName = app.parse()?;
            let state = hoist.app(owner, &app, None).await?;
            let view = AppView::new(&app, &state);
            show(&view, &|| human::app(&view, w));
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
            let command = DomainCommand::RegisterBuild {
                image,
                commit,
                note,
            };
            let executed = ctx.execute(&app, command).await?;
            let (build, registered) = (&executed.state.builds[&id], !executed.events.is_empty());
            show(&views::build_json(&app, build, registered), &|| {
                human::build(&app, build, registered)
            });
        }
        Command::Deploy(args) => {
            let (app, env) = args.target.parse()?;
            let artifact = match (args.image, args.build) {
                (Some(image), None) => Artifact::Image(image.parse()?),
                (None, Some(build)) => Artifact::Build(build.parse::<BuildId>()?),
                _ => unreachable!("clap requires exactly one of --image and --build"),
            };
            ctx.release(&app, DomainCommand::Deploy { env, artifact })
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
                    Error::rejected(format!("invalid config pair {pair:?}: must be KEY=VALUE"))
                })?;
                parsed.push((key.parse::<ConfigKey>()?, value.to_string()));
            }
            let values = if secret {
                hoist.seal(&app, parsed).await?
            } else {
                let plain = |(key, value)| (key, ConfigValue::Plain(value));
                parsed.into_iter().map(plain).collect()
            };
            let values = values.into_iter().collect();
            ctx.release(&app, DomainCommand::SetConfig { env, values })
                .await?;
        }
        Command::Config(ConfigCommand::Unset { target, keys }) => {
            let (app, env) = target.parse()?;
            let keys = keys.iter().map(|k| k.parse()).collect::<Result<_, _>>()?;
            ctx.release(&app, DomainCommand::UnsetConfig { env, keys })
                .await?;
        }
        Command::Config(ConfigCommand::Get { target, reveal }) => {
            let (app, env) = target.parse()?;
            let shown = hoist.config(owner, &app, &env, reveal).await?;
            show(&shown.json(), &|| human::config(&shown));
        }
        Command::Promote(args) => {
            let app: AppName = args.app.parse()?;
            let from: EnvName = args.from.parse()?;
            let to = args.to.map(|t| t.parse::<EnvName>()).transpose()?;
            ctx.release(&app, DomainCommand::Promote { from, to })
                .await?;
        }
        Command::Rollback(args) => {
            let (app, env) = args.target.parse()?;
            let to = args.to.map(|v| v.parse::<ReleaseVersion>()).transpose()?;
            ctx.release(&app, DomainCommand::Rollback { env, to })
                .await?;
        }
        Command::Releases(args) => {
            let (app, env) = args.target.parse()?;
            let at = args.at.map(|t| parse_instant("--at", &t)).transpose()?;
            let limit = args.limit.unwrap_or(usize::MAX);
            let records = hoist.releases(owner, &app, &env, at, limit).await?;
            let releases: Vec<ReleaseView> = records
                .iter()
                .map(|r| ReleaseView::new(&app, &env, r))
                .collect();
            show(&releases, &|| human::releases(&app, &env, &releases, w));
        }
        Command::Status(args) => {
            let app: AppName = args.app.parse()?;
            let at = args.at.map(|t| parse_instant("--at", &t)).transpose()?;
            let status = hoist.status(owner, &app, at).await?;
            show(&status.view(), &|| status.human(w));
        }
        Command::Diff(args) => {
            let (app, env) = args.target.parse()?;
            let (from, to) = (args.from.parse()?, args.to.parse()?);
            let diff = hoist.diff(owner, &app, &env, from, to).await?;
            show(&diff.json(), &|| diff.human());
        }
        Command::Lock(args) => {
            let (app, env) = args.target.parse()?;
            let lock = DomainCommand::Lock {
                env: env.clone(),
                reason: args.reason,
            };
            let state = ctx.execute(&app, lock).await?.state;
            let lock = state.envs[&env].lock.as_ref();
            show(&views::lock_json(&app, &env, lock), &|| {
                human::lock(&app, &env, lock)
            });
        }
        Command::Unlock(args) => {
            let (app, env) = args.parse()?;
            let unlock = DomainCommand::Unlock { env: env.clone() };
            let state = ctx.execute(&app, unlock).await?.state;
            let lock = state.envs[&env].lock.as_ref();
            show(&views::lock_json(&app, &env, lock), &|| {
                human::lock(&app, &env, lock)
            });
        }
        Command::Audit(AuditArgs {
            verify: Some(AuditCommand::Verify { app }),
            ..
        }) => {
            let app = app.map(|a| a.parse::<AppName>()).transpose()?;
            let verified = hoist.verify(owner, app.as_ref()).await?;
            show(&verified.json(), &|| verified.human());
        }
        Command::Audit(args) => {
            let instant = |flag, t: Option<String>| t.map(|t| parse_instant(flag, &t)).transpose();
            let query = AuditQuery {
                app: args.app.map(|a| a.parse()).transpose()?,
                env: args.env.map(|e| e.parse()).transpose()?,
                actor: args.actor,
                kind: args.kind,
                since: instant("--since", args.since)?,
                until: instant("--until", args.until)?,
            };
            let limit = args.limit.unwrap_or(usize::MAX);
            let entries = hoist.audit(owner, &query, limit).await?;
            show(&entries, &|| human::audit(&entries, w));
        }
        Command::Events(EventsArgs {
            transfer: Some(EventsCommand::Export),
            ..
        }) => hoist.export(owner, &mut print_event).await?,
        Command::Events(EventsArgs {
            transfer: Some(EventsCommand::Import),
            ..
        }) => {
            let lines = std::io::stdin().lock().lines().enumerate();
            let imported = hoist.import(owner, lines.map(|(i, l)| (i + 1, l))).await?;
            show(&imported.json(), &|| imported.human());
        }
        Command::Events(args) => {
            let (from, follow) = (args.from, args.follow);
            hoist.events(owner, from, follow, &mut print_event).await?
        }
        Command::Envs(EnvsCommand::Target {
            target: env_args,
            kube,
            context,
            namespace,
            manifests,
            exec,
            exec_env,
            none,
        }) => {
            let (app, env) = env_args.parse()?;
            let target = match (kube, manifests, exec, none) {
                (true, None, None, false) => Target::Kube {
                    context,
                    namespace: namespace.unwrap_or_else(|| env.to_string()),
                },
                (false, Some(dir), None, false) => Target::Manifests {
                    // Stored absolute: `serve` may run from another directory.
                    dir: std::path::absolute(&dir)
                        .map_err(|e| {
                            Error::rejected(format!("--manifests {}: {e}", dir.display()))
                        })?
                        .display()
                        .to_string(),
                },
                (false, None, Some(command), false) => Target::Exec {
                    command,
                    pass_env: exec_env
                        .iter()
                        .map(|n| n.parse())
                        .collect::<Result<_, _>>()?,
                },
                (false, None, None, true) => Target::None,
                _ => unreachable!("clap requires exactly one target kind"),
            };
            let set = DomainCommand::SetTarget {
                env: env.clone(),
                target: target.clone(),
            };
            let changed = !ctx.execute(&app, set).await?.events.is_empty();
            show(&views::target_json(&app, &env, &target, changed), &|| {
                human::target(&app, &env, &target, changed)
            });
        }
        Command::Envs(EnvsCommand::Policy {
            target,
            auto_rollback,
        }) => {
            let (app, env) = target.parse()?;
            let on = auto_rollback == "on";
            let set = DomainCommand::SetPolicy {
                env: env.clone(),
                auto_rollback: on,
            };
            let changed = !ctx.execute(&app, set).await?.events.is_empty();
            show(&views::policy_json(&app, &env, on, changed), &|| {
                human::policy(&app, &env, on)
            });
        }
        Command::Apply(args) => {
            let (app, env) = args.target.parse()?;
            let timeout = parse_span("--timeout", &args.timeout)?;
            if args.dry_run {
                let planned = hoist.plan(owner, &app, &env).await?;
                show(&planned.json(), &|| planned.human());
                return Ok(());
            }
            let options = Options {
                wait: args.wait,
                timeout,
            };
            let context = ctx.reconcile_context(options);
            let reconciled = hoist.reconcile(owner, &app, &env, &context).await?;
            show(&reconciled, &|| reconciled.human());
            if let Some(failed) = reconciled.failure() {
                return Err(failed);
            }
        }
        Command::Serve(args) => crate::serve::serve(&ctx, args).await?,
        Command::Access(command) => ctx.access(command).await?,
        Command::Admin(AdminCommand::Rebuild) => {
            let mut bar = crate::output::Progress::new("rebuild", "log entries");
            let done = hoist
                .rebuild(owner, &mut |at, end| bar.set(at, end))
                .await?;
            drop(bar);
            show(&done.json(), &|| done.human());
        }
        Command::Admin(AdminCommand::Check) => {
            let findings = hoist.check(owner).await?;
            show(&findings, &|| findings.human());
            if let Some(failed) = findings.failure() {
                return Err(failed);
            }
        }
        Command::Bench(args) => {
            let BenchArgs { apps, events, keep } = args;
            let report = hoist.bench(&hoist_control::bench::BenchArgs { apps, events, keep })?;
            show(&report, &|| report.human(w));
        }
        Command::Completions { .. } | Command::Man { .. } => unreachable!("answered above"),
    }
    Ok(())
}

/// `show`'s JSON side: any view, printed as serde_json writes it (a trait object, so one closure
/// serves every command's answer).
mod erased {
    pub trait Json {
        fn print(&self);
    }

    impl<T: serde::Serialize> Json for T {
        fn print(&self) {
            crate::output::print_json(self)
        }
    }
}

/// hoist opened from the global options, and the options themselves.
pub struct Ctx {
    pub global: GlobalArgs,
    pub hoist: Hoist,
}

impl EnvArgs {
    pub fn parse(&self) -> Result<(AppName, EnvName), Error> {
        Ok((self.app.parse()?, self.env.parse()?))
    }
}

impl Ctx {
    fn new(global: GlobalArgs) -> Result<Self, Error> {
        let backend = match &global.nats {
            Some(url) => Backend::Nats(NatsSettings {
                url: url.clone(),
                stream: global.stream.clone(),
                creds_file: global.nats_creds.clone(),
                tls_ca_file: global.nats_tls_ca.clone(),
                replicas: usize::from(global.replicas),
            }),
            None => Backend::Embedded {
                dir: global.store.clone(),
            },
        };
        let config = Config {
            backend,
            cache: global.cache.clone(),
            secret_key_file: std::env::var_os("HOIST_SECRET_KEY_FILE").map(Into::into),
        };
        let hoist = Hoist::open(config)?.on_warning(warn);
        Ok(Ctx { global, hoist })
    }

    /// Who runs a command: a command run directly on a store acts as the store's owner, who may
    /// do anything (CLI.md: "Identities, tokens and roles"), under the actor's name.
    fn caller(&self) -> Result<Caller, Error> {
        Ok(Caller::owner(self.actor()?))
    }

    fn actor(&self) -> Result<Actor, Error> {
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
        let actor = git_email
            .or_else(|| std::env::var("USER").ok())
            .ok_or_else(|| {
                Error::rejected("actor: unknown; set --actor or HOIST_ACTOR (or git user.email)")
            })?;
        Ok(actor.parse()?)
    }

    /// The reconcile context, with the crash-safety tests' hooks when their environment sets
    /// them (read here, at the front door, never on the production path; no flag, so they stay
    /// out of help and completions): `HOIST_TEST_PAUSE_AFTER_APPLY=FILE` stops the reconciler
    /// right after an apply, before recording, having written the version to FILE;
    /// `HOIST_TEST_RECORD_PATIENCE=SPAN` replaces how long recording keeps trying on NATS.
    pub fn reconcile_context(&self, options: Options) -> Context {
        let mut context = Context::new(options);
        context.pause_after_apply =
            std::env::var_os("HOIST_TEST_PAUSE_AFTER_APPLY").map(Into::into);
        let patience = std::env::var("HOIST_TEST_RECORD_PATIENCE").ok();
        if let Some(patience) = patience.and_then(|t| parse_span("", &t).ok()) {
            context.record_patience = patience;
        }
        context
    }

    async fn execute(&self, app: &AppName, command: DomainCommand) -> Result<Executed, Error> {
        self.hoist.execute(&self.caller()?, app, command).await
    }

    /// Runs a command that creates a release, and prints that release.
    async fn release(&self, app: &AppName, command: DomainCommand) -> Result<(), Error> {
        let executed = self.execute(app, command).await?;
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
            out!("{}", human::released(&view));
        }
        Ok(())
    }
}

impl Ctx {
    /// One answer: its JSON shape under --json, else its human text.
    fn show(&self, json: &dyn erased::Json, human: &dyn Fn() -> String) {
        if self.global.json {
            json.print();
        } else {
            out!("{}", human());
        }
    }

    /// `hoist access …`, run as the store's owner (as every command on a store is).
    async fn access(&self, command: AccessCommand) -> Result<(), Error> {
        let (hoist, owner, w) = (&self.hoist, &Principal::Owner, width());
        match command {
            AccessCommand::Token(TokenCommand::Create {
                identity,
                name,
                expires,
            }) => {
                let identity = parse_identity(&identity)?;
                let expires_at = expires
                    .map(|span| parse_from_now("--expires", &span))
                    .transpose()?;
                let new = hoist
                    .access_token_create(&self.caller()?, &identity, name, expires_at)
                    .await?;
                self.show(&views::new_token_json(&new), &|| human::new_token(&new));
            }
            AccessCommand::Token(TokenCommand::List { identity }) => {
                let identity = identity.as_deref().map(parse_identity).transpose()?;
                let tokens = hoist.access_token_list(owner, identity.as_ref()).await?;
                let json: Vec<_> = tokens.iter().map(views::token_json).collect();
                self.show(&json, &|| human::tokens(&tokens, w));
            }
            AccessCommand::Token(TokenCommand::Revoke { id }) => {
                let id: TokenId = id.parse()?;
                let token = hoist.access_token_revoke(&self.caller()?, &id).await?;
                self.show(&views::token_json(&token), &|| human::token_revoked(&token));
            }
            AccessCommand::Grant(args) => {
                let (identity, grant) = args.parse()?;
                let granted = hoist
                    .access_grant(&self.caller()?, &identity, grant)
                    .await?;
                self.show(&views::granted_json(&granted), &|| human::granted(&granted));
            }
            AccessCommand::Revoke(args) => {
                let (identity, grant) = args.parse()?;
                let revoked = hoist
                    .access_revoke(&self.caller()?, &identity, grant)
                    .await?;
                self.show(&views::revoked_grant_json(&revoked), &|| {
                    human::revoked_grant(&revoked)
                });
            }
            AccessCommand::List { identity, app } => {
                let identity = identity.as_deref().map(parse_identity).transpose()?;
                let app = app.map(|a| a.parse::<AppName>()).transpose()?;
                let grants = hoist
                    .access_list(owner, identity.as_ref(), app.as_ref())
                    .await?;
                let json: Vec<_> = grants.iter().map(views::grant_json).collect();
                self.show(&json, &|| human::grants(&grants, w));
            }
            AccessCommand::Link { chat_id, identity } => {
                let chat_id: ChatId = chat_id.parse()?;
                let identity = parse_identity(&identity)?;
                let linked = hoist
                    .access_link(&self.caller()?, &chat_id, &identity)
                    .await?;
                self.show(&views::linked_json(&linked), &|| human::linked(&linked));
            }
            AccessCommand::Unlink { chat_id } => {
                let chat_id: ChatId = chat_id.parse()?;
                let linked = hoist.access_unlink(&self.caller()?, &chat_id).await?;
                self.show(&views::linked_json(&linked), &|| human::linked(&linked));
            }
            AccessCommand::Check {
                identity,
                action,
                app,
                env,
            } => {
                let identity = parse_identity(&identity)?;
                let action: Action = action.parse()?;
                let scope = Scope {
                    app: Some(app.parse()?),
                    env: env.map(|e| e.parse()).transpose()?,
                };
                let verdict = hoist.access_check(owner, &identity, action, &scope).await?;
                self.show(&verdict, &|| human::verdict(&verdict));
            }
        }
        Ok(())
    }
}

impl GrantArgs {
    /// The identity and the grant, each checked.
    fn parse(&self) -> Result<(Actor, Grant), Error> {
        let grant = Grant {
            role: self.role.parse::<Role>()?,
            app: self.app.as_deref().map(str::parse).transpose()?,
            env: self.env.as_deref().map(str::parse).transpose()?,
        };
        Ok((parse_identity(&self.identity)?, grant))
    }
}

/// An identity: a name as an actor's (an e-mail or user name, one line), named as an identity.
fn parse_identity(text: &str) -> Result<Actor, Error> {
    text.parse::<Actor>().map_err(|e| {
        Error::rejected(ValidationError {
            field: "identity",
            ..e
        })
    })
}

/// One event line of `events` and `events export`; stops the stream once nobody reads.
fn print_event(line: &views::EventLine) -> ControlFlow<()> {
    print_json_line(line);
    match stdout_closed() {
        Some(_) => ControlFlow::Break(()),
        None => ControlFlow::Continue(()),
    }
}
