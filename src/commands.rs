//! Runs one parsed command line: turns the arguments into domain values (before touching the
//! store, so bad input costs nothing and appends nothing), calls `hoist_control`, prints.

use crate::cli::*;
use crate::output::{out, print_json, print_json_line, stdout_closed, warn, width, write_stdout};
use hoist_control::api::LAST_HEALTHY;
use hoist_control::api::{parse_identity, Request};
use hoist_control::engine::hooks::{HookFormat, HookKind};
use hoist_control::engine::HookName;
use hoist_control::engine::{
    Actor, AppName, Artifact, BuildId, ConfigKey, EnvName, Grant, Hostname, PolicyChanges,
    Principal, ReleaseVersion, Role, Routing, Scale, Scope, Target,
};
use hoist_control::formation;
use hoist_control::hooks::HookAdd;
use hoist_control::reconcile::Options;
use hoist_control::time::{parse_from_now, parse_instant, parse_span};
use hoist_control::views;
use hoist_control::{
    AuditQuery, Backend, Caller, Config, Error, Hoist, NatsSettings, ReconcileHooks,
};
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
    let (hoist, owner) = (&ctx.hoist, &Principal::Owner);
    let request = match cli.command {
        Command::Apps(AppsCommand::Create { app, envs }) => Request::AppsCreate {
            app: app.parse()?,
            envs: envs.iter().map(|e| e.parse()).collect::<Result<_, _>>()?,
        },
        Command::Apps(AppsCommand::List) => Request::AppsList,
        Command::Apps(AppsCommand::Show { app }) => Request::AppsShow { app: app.parse()? },
        Command::Builds(BuildsCommand::Register {
            app,
            image,
            commit,
            note,
            processes,
            procfile,
            release_command,
        }) => {
            let (app, image) = (app.parse()?, image.parse()?);
            let procfile = procfile
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .map_err(|e| Error::rejected(format!("--procfile {}: {e}", path.display())))
                })
                .transpose()?;
            let (processes, release_command) =
                formation::processes_of(&processes, procfile.as_deref(), release_command)?;
            Request::BuildsRegister {
                app,
                image,
                commit,
                note,
                processes,
                release_command,
            }
        }
        Command::Deploy(args) => {
            let (app, env) = args.target.parse()?;
            let artifact = match (args.image, args.build) {
                (Some(image), None) => Artifact::Image(image.parse()?),
                (None, Some(build)) => Artifact::Build(build.parse::<BuildId>()?),
                _ => unreachable!("clap requires exactly one of --image and --build"),
            };
            Request::Deploy { app, env, artifact }
        }
        Command::Config(ConfigCommand::Set {
            target,
            pairs,
            secret,
        }) => {
            let (app, env) = target.parse()?;
            let mut values = Vec::with_capacity(pairs.len());
            for pair in &pairs {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    Error::rejected(format!("invalid config pair {pair:?}: must be KEY=VALUE"))
                })?;
                values.push((key.parse::<ConfigKey>()?, value.to_string()));
            }
            Request::ConfigSet {
                app,
                env,
                values,
                secret,
            }
        }
        Command::Config(ConfigCommand::Unset { target, keys }) => {
            let (app, env) = target.parse()?;
            let keys = keys.iter().map(|k| k.parse()).collect::<Result<_, _>>()?;
            Request::ConfigUnset { app, env, keys }
        }
        Command::Config(ConfigCommand::Get { target, reveal }) => {
            let (app, env) = target.parse()?;
            Request::ConfigGet { app, env, reveal }
        }
        Command::Promote(args) => {
            let app = args.app.parse()?;
            let from = args.from.parse()?;
            let to = args.to.map(|t| t.parse::<EnvName>()).transpose()?;
            if args.force {
                Request::PromoteForced { app, from, to }
            } else {
                Request::Promote { app, from, to }
            }
        }
        Command::Rollback(args) => {
            let (app, env) = args.target.parse()?;
            match args.to.as_deref() {
                Some(LAST_HEALTHY) => Request::RollbackLastHealthy { app, env },
                to => {
                    let to = to.map(|v| v.parse::<ReleaseVersion>()).transpose()?;
                    Request::Rollback { app, env, to }
                }
            }
        }
        Command::Releases(args) => {
            let (app, env) = args.target.parse()?;
            let at = args.at.map(|t| parse_instant("--at", &t)).transpose()?;
            let limit = args.limit;
            Request::Releases {
                app,
                env,
                at,
                limit,
            }
        }
        Command::Status(args) => Request::Status {
            app: args.app.parse()?,
            at: args.at.map(|t| parse_instant("--at", &t)).transpose()?,
        },
        Command::Diff(args) => {
            let (app, env) = args.target.parse()?;
            let (from, to) = (args.from.parse()?, args.to.parse()?);
            Request::Diff { app, env, from, to }
        }
        Command::Lock(args) => {
            let (app, env) = args.target.parse()?;
            let reason = args.reason;
            Request::Lock { app, env, reason }
        }
        Command::Unlock(args) => {
            let (app, env) = args.parse()?;
            Request::Unlock { app, env }
        }
        Command::Audit(AuditArgs {
            verify: Some(AuditCommand::Verify { app }),
            ..
        }) => Request::AuditVerify {
            app: app.map(|a| a.parse::<AppName>()).transpose()?,
        },
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
            let limit = args.limit;
            Request::Audit { query, limit }
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
            ingress_class,
            tls_secret,
            health_path,
        }) => {
            let (app, env) = env_args.parse()?;
            let routing = Routing {
                ingress_class,
                tls_secret,
                health_path,
            };
            if !(routing.is_default() || kube || manifests.is_some()) {
                return Err(Error::rejected(
                    "--ingress-class, --tls-secret and --health-path go with --kube or --manifests",
                ));
            }
            let target = match (kube, manifests, exec, none) {
                (true, None, None, false) => Target::Kube {
                    context,
                    namespace: namespace.unwrap_or_else(|| env.to_string()),
                    routing,
                },
                (false, Some(dir), None, false) => Target::Manifests {
                    // Stored absolute: `serve` may run from another directory.
                    dir: std::path::absolute(&dir)
                        .map_err(|e| {
                            Error::rejected(format!("--manifests {}: {e}", dir.display()))
                        })?
                        .display()
                        .to_string(),
                    routing,
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
            Request::EnvsTarget { app, env, target }
        }
        Command::Envs(EnvsCommand::Policy {
            target,
            auto_rollback,
            auto_promote,
            after,
            verify,
            no_verify,
            self_heal,
        }) => {
            let (app, env) = target.parse()?;
            let on = |flag: Option<String>| flag.map(|f| f == "on");
            let after_secs = after
                .map(|a| parse_span("--after", &a).map(|span| span.as_secs()))
                .transpose()?;
            let changes = PolicyChanges {
                auto_rollback: on(auto_rollback),
                auto_promote: on(auto_promote),
                after_secs,
                verify: match (verify, no_verify) {
                    (Some(command), _) => Some(Some(command)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                self_heal: on(self_heal),
            };
            Request::EnvsPolicy { app, env, changes }
        }
        Command::Access(command) => access_request(command)?,
        Command::Hooks(command) => hooks_request(command)?,
        Command::Apply(args) => {
            let (app, env) = args.target.parse()?;
            let timeout = args
                .timeout
                .as_deref()
                .map(|t| parse_span("--timeout", t))
                .transpose()?;
            let options = Options {
                wait: args.wait,
                timeout: timeout.unwrap_or(std::time::Duration::from_secs(300)),
                // issue 14: a timeout given bounds the release phase too (default 1h).
                release_timeout: timeout,
            };
            let dry_run = args.dry_run;
            Request::Apply {
                app,
                env,
                options,
                dry_run,
            }
        }
        Command::Login => return crate::remote::login(&ctx).await,
        Command::Events(EventsArgs {
            transfer: None,
            from,
            follow,
        }) if ctx.remote.is_some() => {
            return crate::remote::events(ctx.remote(), from, follow).await;
        }
        // The store's own: backups, upkeep, the daemon, the bench run where the store is.
        Command::Events(_) | Command::Serve(_) | Command::Admin(_) | Command::Bench(_)
            if ctx.remote.is_some() =>
        {
            return Err(Error::rejected(
                "this command works on a store, not through a server: run it with --store or --nats where the store is",
            ));
        }
        Command::Events(EventsArgs {
            transfer: Some(EventsCommand::Export),
            ..
        }) => return hoist.export(owner, &mut print_event).await,
        Command::Events(EventsArgs {
            transfer: Some(EventsCommand::Import),
            ..
        }) => {
            let lines = std::io::stdin().lock().lines().enumerate();
            let imported = hoist.import(owner, lines.map(|(i, l)| (i + 1, l))).await?;
            return ctx.show(&imported.json(), &imported.human());
        }
        Command::Events(args) => {
            let (from, follow) = (args.from, args.follow);
            return hoist.events(owner, from, follow, &mut print_event).await;
        }
        Command::Serve(args) => return crate::serve::serve(&ctx, args).await,
        Command::Admin(AdminCommand::Rebuild) => {
            let mut bar = crate::output::Progress::new("rebuild", "log entries");
            let done = hoist
                .rebuild(owner, &mut |at, end| bar.set(at, end))
                .await?;
            drop(bar);
            return ctx.show(&done.json(), &done.human());
        }
        Command::Admin(AdminCommand::Check) => {
            let findings = hoist.check(owner).await?;
            ctx.show(&findings, &findings.human())?;
            return findings.failure().map_or(Ok(()), Err);
        }
        Command::Bench(args) => {
            let BenchArgs { apps, events, keep } = args;
            let report = hoist.bench(&hoist_control::bench::BenchArgs { apps, events, keep })?;
            return ctx.show(&report, &report.human(width()));
        }
        Command::Completions { .. } | Command::Man { .. } => unreachable!("answered above"),
        // issue 16
        Command::Pin(args) => {
            let (app, env) = args.target.parse()?;
            Request::Pin {
                app,
                env,
                reason: args.reason,
            }
        }
        Command::Unpin(args) => {
            let (app, env) = args.parse()?;
            Request::Unpin { app, env }
        }
        Command::Drift(args) => {
            let (app, env) = args.parse()?;
            Request::Drift { app, env }
        }
        // issue 14
        Command::Ps(PsArgs {
            scale: Some(PsCommand::Scale { target, counts }),
            ..
        }) => {
            let (app, env) = target.parse()?;
            let mut replicas = Scale::new();
            for pair in &counts {
                let (process_type, count) = formation::parse_scale(pair)?;
                if replicas.insert(process_type.clone(), count).is_some() {
                    return Err(Error::rejected(format!(
                        "process type {process_type} is scaled twice"
                    )));
                }
            }
            Request::PsScale { app, env, replicas }
        }
        Command::Ps(PsArgs { app, env, .. }) => Request::Ps {
            app: app.expect("clap requires APP").parse()?,
            env: env.expect("clap requires --env").parse()?,
        },
        Command::Domains(DomainsCommand::Add { target, host }) => {
            let (app, env) = target.parse()?;
            let host = host.parse::<Hostname>()?;
            Request::DomainsAdd { app, env, host }
        }
        Command::Domains(DomainsCommand::Remove { target, host }) => {
            let (app, env) = target.parse()?;
            let host = host.parse::<Hostname>()?;
            Request::DomainsRemove { app, env, host }
        }
        Command::Domains(DomainsCommand::List { target }) => {
            let (app, env) = target.parse()?;
            Request::DomainsList { app, env }
        }
    };
    if let Some(client) = &ctx.remote {
        return crate::remote::answer(client, &request, ctx.global.json).await;
    }
    let answer = hoist
        .answer(&ctx.caller(&request)?, request, width())
        .await?;
    if ctx.global.json {
        // As serde_json wrote it: the contract (it escapes what JSON must on its own).
        write_stdout(answer.json.as_bytes());
    } else {
        out!("{}", answer.human);
    }
    answer.failure.map_or(Ok(()), Err)
}

/// hoist opened from the global options, and the options themselves; `remote`: the server every
/// command goes through instead (`--server`, or what `hoist login` saved).
pub struct Ctx {
    pub global: GlobalArgs,
    pub hoist: Hoist,
    pub remote: Option<hoist_server::client::Client>,
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
        let hoist = Hoist::open(config)?
            .on_warning(warn)
            .with_reconcile_hooks(reconcile_hooks());
        let remote = crate::remote::client(&global)?;
        Ok(Ctx {
            global,
            hoist,
            remote,
        })
    }

    fn remote(&self) -> &hoist_server::client::Client {
        self.remote.as_ref().expect("a remote command has a server")
    }

    /// Who runs a command: a command run directly on a store acts as the store's owner, who may
    /// do anything (CLI.md: "Identities, tokens and roles"), under the actor's name. A query
    /// records nothing, so it needs no actor (it must not fail for want of one).
    fn caller(&self, request: &Request) -> Result<Caller, Error> {
        let actor = match self.actor() {
            Err(_) if request.is_query() => "owner".parse()?,
            actor => actor?,
        };
        Ok(Caller::owner(actor))
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

    /// One answer: its JSON shape under --json (as serde_json writes it), else its human text.
    fn show(&self, json: &impl serde::Serialize, human: &str) -> Result<(), Error> {
        if self.global.json {
            print_json(json);
        } else {
            out!("{human}");
        }
        Ok(())
    }
}

/// The crash-safety tests' hooks, when their environment sets them (read here, at the front
/// door, never on the production path; no flag, so they stay out of help and completions):
/// `HOIST_TEST_PAUSE_AFTER_APPLY=FILE` stops the reconciler right after an apply, before
/// recording, having written the version to FILE; `HOIST_TEST_RECORD_PATIENCE=SPAN` replaces how
/// long recording keeps trying on NATS.
fn reconcile_hooks() -> ReconcileHooks {
    ReconcileHooks {
        pause_after_apply: std::env::var_os("HOIST_TEST_PAUSE_AFTER_APPLY").map(Into::into),
        pause_after_send: std::env::var_os("HOIST_TEST_PAUSE_AFTER_SEND").map(Into::into),
        record_patience: std::env::var("HOIST_TEST_RECORD_PATIENCE")
            .ok()
            .and_then(|span| parse_span("HOIST_TEST_RECORD_PATIENCE", &span).ok()),
    }
}

/// `hoist access …` as a request (run, like every command on a store, as the store's owner).
fn access_request(command: AccessCommand) -> Result<Request, Error> {
    Ok(match command {
        AccessCommand::Token(TokenCommand::Create {
            identity,
            name,
            expires,
        }) => Request::TokenCreate {
            identity: parse_identity(&identity)?,
            name,
            expires_at: expires
                .map(|span| parse_from_now("--expires", &span))
                .transpose()?,
        },
        AccessCommand::Token(TokenCommand::List { identity }) => Request::TokenList {
            identity: identity.as_deref().map(parse_identity).transpose()?,
        },
        AccessCommand::Token(TokenCommand::Revoke { id }) => {
            Request::TokenRevoke { id: id.parse()? }
        }
        AccessCommand::Grant(args) => {
            let (identity, grant) = args.parse()?;
            Request::Grant { identity, grant }
        }
        AccessCommand::Revoke(args) => {
            let (identity, grant) = args.parse()?;
            Request::Revoke { identity, grant }
        }
        AccessCommand::List { identity, app } => Request::AccessList {
            identity: identity.as_deref().map(parse_identity).transpose()?,
            app: app.map(|a| a.parse::<AppName>()).transpose()?,
        },
        AccessCommand::Link { chat_id, identity } => Request::Link {
            chat_id: chat_id.parse()?,
            identity: parse_identity(&identity)?,
        },
        AccessCommand::Unlink { chat_id } => Request::Unlink {
            chat_id: chat_id.parse()?,
        },
        AccessCommand::Check {
            identity,
            action,
            app,
            env,
        } => Request::AccessCheck {
            identity: parse_identity(&identity)?,
            action: action.parse()?,
            scope: Scope {
                app: Some(app.parse()?),
                env: env.map(|e| e.parse()).transpose()?,
            },
        },
    })
}

/// `hoist hooks …` as a request. Files holding secrets are read here, trimmed of surrounding
/// whitespace, so a remote server never reads the client's files.
fn hooks_request(command: HooksCommand) -> Result<Request, Error> {
    let name = |name: &str| name.parse::<HookName>().map_err(Error::from);
    Ok(match command {
        HooksCommand::Add(args) => {
            let read = |flag: &str, path: &Option<std::path::PathBuf>| {
                path.as_ref()
                    .map(|path| {
                        std::fs::read_to_string(path)
                            .map(|text| text.trim().to_string())
                            .map_err(|e| Error::rejected(format!("{flag} {}: {e}", path.display())))
                    })
                    .transpose()
            };
            let format = args.format.parse::<HookFormat>().map_err(Error::rejected)?;
            let secret = match (format, &args.secret_file, &args.token_file) {
                (_, Some(_), Some(_)) => {
                    return Err(Error::rejected(
                        "give --secret-file (signing formats) or --token-file (matrix, slack bot), not both",
                    ))
                }
                (HookFormat::Matrix, Some(_), None) => {
                    return Err(Error::rejected(
                        "--format matrix takes --token-file, not --secret-file",
                    ))
                }
                (HookFormat::StandardWebhooks | HookFormat::CloudEvents, None, Some(_)) => {
                    return Err(Error::rejected(
                        "--token-file is for --format matrix or a slack bot; a signing secret is --secret-file",
                    ))
                }
                (_, Some(_), None) => read("--secret-file", &args.secret_file)?,
                (_, None, Some(_)) => read("--token-file", &args.token_file)?,
                (_, None, None) => None,
            };
            Request::HooksAdd {
                add: HookAdd {
                    name: name(&args.name)?,
                    url: args.url,
                    format,
                    app: args.app.map(|a| a.parse::<AppName>()).transpose()?,
                    env: args.env.map(|e| e.parse::<EnvName>()).transpose()?,
                    kinds: HookKind::parse_list(&args.events).map_err(Error::rejected)?,
                    secret,
                    room: args.room,
                },
            }
        }
        HooksCommand::List => Request::HooksList,
        HooksCommand::Remove { name: n } => Request::HooksRemove { name: name(&n)? },
        HooksCommand::Test { name: n } => Request::HooksTest { name: name(&n)? },
        HooksCommand::Deliveries { name: n, limit } => Request::HooksDeliveries {
            name: name(&n)?,
            limit,
        },
        HooksCommand::Rotate {
            name: n,
            secret_file,
            keep,
        } => Request::HooksRotate {
            name: name(&n)?,
            secret: secret_file
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .map(|text| text.trim().to_string())
                        .map_err(|e| {
                            Error::rejected(format!("--secret-file {}: {e}", path.display()))
                        })
                })
                .transpose()?,
            keep: parse_span("--keep", &keep)?,
        },
        HooksCommand::Redeliver { name: n, delivery } => Request::HooksRedeliver {
            name: name(&n)?,
            delivery: delivery.parse().map_err(|_| {
                Error::rejected(format!(
                    "invalid DELIVERY_ID {delivery:?}: must be a delivery's id as `hoist hooks deliveries` shows it"
                ))
            })?,
        },
    })
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

/// One event line of `events` and `events export`; stops the stream once nobody reads.
fn print_event(line: &views::EventLine) -> ControlFlow<()> {
    print_json_line(line);
    match stdout_closed() {
        Some(_) => ControlFlow::Break(()),
        None => ControlFlow::Continue(()),
    }
}
