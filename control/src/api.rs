//! Every front end's commands in one place: a [`Request`] (a command line, an HTTP route or a
//! chat message, parsed into domain values) answered by [`Hoist::answer`] as an [`Answer`] —
//! its CLI.md JSON and its human text. The CLI prints one of them; the server sends the JSON
//! (or, asked for `text/plain`, the text: what the remote CLI prints); chat replies with the
//! text. One implementation of each command, whoever asks.

use crate::error::{Error, Result};
use crate::formation;
use crate::human::{self, Width};
use crate::reconcile::{Context, Options};
use crate::views::{self, AppView, ReleaseView};
use crate::{AuditQuery, Caller, Hoist};
use chrono::{DateTime, Utc};
use hoist_engine::{
    Action, Actor, AppName, Artifact, Build, ChatId, Command, ConfigKey, ConfigValue, EnvName,
    Event, Grant, HookName, Hostname, ImageRef, PolicyChanges, Processes, ReleaseVersion, Scale,
    Scope, Target, TokenId, ValidationError,
};
use serde::Serialize;
use std::collections::BTreeSet;

/// A command, as any front end asks it.
#[derive(Debug, Clone)]
pub enum Request {
    AppsCreate {
        app: AppName,
        envs: Vec<EnvName>,
    },
    AppsList,
    AppsShow {
        app: AppName,
    },
    BuildsRegister {
        app: AppName,
        image: ImageRef,
        commit: Option<String>,
        note: Option<String>,
        /// issue 14: process types (from `--process` and `--procfile`) and the release command.
        processes: Processes,
        release_command: Option<String>,
    },
    Deploy {
        app: AppName,
        env: EnvName,
        artifact: Artifact,
    },
    /// `config set` (`secret`: sealed before they reach the log).
    ConfigSet {
        app: AppName,
        env: EnvName,
        values: Vec<(ConfigKey, String)>,
        secret: bool,
    },
    ConfigUnset {
        app: AppName,
        env: EnvName,
        keys: BTreeSet<ConfigKey>,
    },
    ConfigGet {
        app: AppName,
        env: EnvName,
        reveal: bool,
    },
    Promote {
        app: AppName,
        from: EnvName,
        to: Option<EnvName>,
    },
    Rollback {
        app: AppName,
        env: EnvName,
        to: Option<ReleaseVersion>,
    },
    Releases {
        app: AppName,
        env: EnvName,
        at: Option<DateTime<Utc>>,
        limit: Option<usize>,
    },
    Status {
        app: AppName,
        at: Option<DateTime<Utc>>,
    },
    Diff {
        app: AppName,
        env: EnvName,
        from: ReleaseVersion,
        to: ReleaseVersion,
    },
    Lock {
        app: AppName,
        env: EnvName,
        reason: String,
    },
    Unlock {
        app: AppName,
        env: EnvName,
    },
    Audit {
        query: AuditQuery,
        limit: Option<usize>,
    },
    AuditVerify {
        app: Option<AppName>,
    },
    EnvsTarget {
        app: AppName,
        env: EnvName,
        target: Target,
    },
    /// `envs policy`: the settings given change, the others stay.
    EnvsPolicy {
        app: AppName,
        env: EnvName,
        changes: PolicyChanges,
    },
    Apply {
        app: AppName,
        env: EnvName,
        options: Options,
        dry_run: bool,
    },
    TokenCreate {
        identity: Actor,
        name: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    },
    TokenList {
        identity: Option<Actor>,
    },
    TokenRevoke {
        id: TokenId,
    },
    Grant {
        identity: Actor,
        grant: Grant,
    },
    Revoke {
        identity: Actor,
        grant: Grant,
    },
    AccessList {
        identity: Option<Actor>,
        app: Option<AppName>,
    },
    Link {
        chat_id: ChatId,
        identity: Actor,
    },
    Unlink {
        chat_id: ChatId,
    },
    AccessCheck {
        identity: Actor,
        action: Action,
        scope: Scope,
    },
    // issue 11: subscribers.
    HooksAdd {
        add: crate::hooks::HookAdd,
    },
    HooksList,
    HooksRemove {
        name: HookName,
    },
    HooksTest {
        name: HookName,
    },
    HooksDeliveries {
        name: HookName,
        limit: Option<usize>,
    },
    HooksRedeliver {
        name: HookName,
        delivery: uuid::Uuid,
    },
    HooksRotate {
        name: HookName,
        secret: Option<String>,
        keep: std::time::Duration,
    },
    // issue 16
    Pin {
        app: AppName,
        env: EnvName,
        reason: Option<String>,
    },
    Unpin {
        app: AppName,
        env: EnvName,
    },
    /// `rollback --to last-healthy`.
    RollbackLastHealthy {
        app: AppName,
        env: EnvName,
    },
    /// `promote --force`: into a pinned env too.
    PromoteForced {
        app: AppName,
        from: EnvName,
        to: Option<EnvName>,
    },
    /// `drift`: the env's target compared with its applied release (and a drift found recorded).
    Drift {
        app: AppName,
        env: EnvName,
    },
    // issue 14: formation.
    Ps {
        app: AppName,
        env: EnvName,
    },
    PsScale {
        app: AppName,
        env: EnvName,
        replicas: Scale,
    },
    DomainsAdd {
        app: AppName,
        env: EnvName,
        host: Hostname,
    },
    DomainsRemove {
        app: AppName,
        env: EnvName,
        host: Hostname,
    },
    DomainsList {
        app: AppName,
        env: EnvName,
    },
}

impl Request {
    /// Whether the request only reads (it appends nothing and records no actor).
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            Request::AppsList
                | Request::AppsShow { .. }
                | Request::ConfigGet { .. }
                | Request::Releases { .. }
                | Request::Status { .. }
                | Request::Diff { .. }
                | Request::Audit { .. }
                | Request::AuditVerify { .. }
                | Request::Apply { dry_run: true, .. }
                | Request::TokenList { .. }
                | Request::AccessList { .. }
                | Request::AccessCheck { .. }
                | Request::HooksList
                | Request::HooksDeliveries { .. }
                // issue 14
                | Request::Ps { .. }
                | Request::DomainsList { .. }
        )
    }

    /// The command's name in metrics (`hoist_commands_total{kind}`): one per variant, in
    /// snake case, never any value the request carries (so the label set stays bounded).
    pub fn kind(&self) -> &'static str {
        match self {
            Request::AppsCreate { .. } => "apps_create",
            Request::AppsList => "apps_list",
            Request::AppsShow { .. } => "apps_show",
            Request::BuildsRegister { .. } => "builds_register",
            Request::Deploy { .. } => "deploy",
            Request::ConfigSet { .. } => "config_set",
            Request::ConfigUnset { .. } => "config_unset",
            Request::ConfigGet { .. } => "config_get",
            Request::Promote { .. } => "promote",
            Request::Rollback { .. } => "rollback",
            Request::Releases { .. } => "releases",
            Request::Status { .. } => "status",
            Request::Diff { .. } => "diff",
            Request::Lock { .. } => "lock",
            Request::Unlock { .. } => "unlock",
            Request::Audit { .. } => "audit",
            Request::AuditVerify { .. } => "audit_verify",
            Request::EnvsTarget { .. } => "envs_target",
            Request::EnvsPolicy { .. } => "envs_policy",
            Request::Apply { .. } => "apply",
            Request::TokenCreate { .. } => "token_create",
            Request::TokenList { .. } => "token_list",
            Request::TokenRevoke { .. } => "token_revoke",
            Request::Grant { .. } => "grant",
            Request::Revoke { .. } => "revoke",
            Request::AccessList { .. } => "access_list",
            Request::Link { .. } => "link",
            Request::Unlink { .. } => "unlink",
            Request::AccessCheck { .. } => "access_check",
            Request::HooksAdd { .. } => "hooks_add",
            Request::HooksList => "hooks_list",
            Request::HooksRemove { .. } => "hooks_remove",
            Request::HooksTest { .. } => "hooks_test",
            Request::HooksDeliveries { .. } => "hooks_deliveries",
            Request::HooksRedeliver { .. } => "hooks_redeliver",
            Request::HooksRotate { .. } => "hooks_rotate",
            // issue 16
            Request::Pin { .. } => "pin",
            Request::Unpin { .. } => "unpin",
            Request::RollbackLastHealthy { .. } => "rollback_last_healthy",
            Request::PromoteForced { .. } => "promote_forced",
            Request::Drift { .. } => "drift",
            // issue 14
            Request::Ps { .. } => "ps",
            Request::PsScale { .. } => "ps_scale",
            Request::DomainsAdd { .. } => "domains_add",
            Request::DomainsRemove { .. } => "domains_remove",
            Request::DomainsList { .. } => "domains_list",
        }
    }
}

// issue 16
/// What `rollback --to` takes besides a version: the last release recorded healthy.
pub const LAST_HEALTHY: &str = "last-healthy";

/// An identity (`access token create IDENTITY`, a grant's, a chat link's): an actor's name,
/// refused as the field `identity` so the message names what the caller typed.
pub fn parse_identity(text: &str) -> Result<Actor> {
    text.parse::<Actor>().map_err(|e| {
        Error::rejected(ValidationError {
            field: "identity",
            ..e
        })
    })
}

/// Answers to queries, each with the log sequence it was made at: served again only while the
/// log is still there. Bounded in bytes: full, it starts afresh; a very large answer (a whole
/// history without `--limit`) is not kept.
#[derive(Clone, Default)]
pub(crate) struct AnswerCache(std::sync::Arc<std::sync::Mutex<CachedAnswers>>);

#[derive(Default)]
pub(crate) struct CachedAnswers {
    answers: std::collections::HashMap<String, (u64, Answer)>,
    bytes: usize,
}

/// The bytes of answers kept at most, and the largest one kept.
const CACHED_BYTES: usize = 32 << 20;
const LARGEST_CACHED: usize = 256 << 10;

impl AnswerCache {
    pub(crate) fn get(&self, head: u64, key: &str) -> Option<Answer> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .answers
            .get(key)
            .filter(|(at, _)| *at == head)
            .map(|(_, answer)| answer.clone())
    }

    pub(crate) fn put(&self, head: u64, key: String, answer: &Answer) {
        let size = key.len() + answer.json.len() + answer.human.len();
        if size > LARGEST_CACHED {
            return;
        }
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cached.bytes + size > CACHED_BYTES {
            cached.answers.clear();
            cached.bytes = 0;
        }
        if let Some((_, old)) = cached.answers.insert(key.clone(), (head, answer.clone())) {
            cached.bytes -= key.len() + old.json.len() + old.human.len();
        }
        cached.bytes += size;
    }
}

/// What a request came to: its JSON (exactly what `--json` prints, one pretty document and a
/// line end) and its human text. `failure`: an answer that is also a failure (`apply` whose
/// rollout failed): shown, then the command fails with it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub json: String,
    pub human: String,
    pub failure: Option<Error>,
}

impl Answer {
    fn of(view: &impl Serialize, human: String) -> Self {
        let mut json = serde_json::to_string_pretty(view).expect("views serialize");
        json.push('\n');
        Answer {
            json,
            human,
            failure: None,
        }
    }
}

impl Hoist {
    /// Answers `request` as `caller`: the one implementation of each command every front end
    /// calls. `width`: the human text's table width (a terminal's), if any.
    pub async fn answer(&self, caller: &Caller, request: Request, width: Width) -> Result<Answer> {
        // A query's answer is a function of the log, the request and who asks: while the log has
        // not moved, the same question gets the answer already made, without opening the store.
        // (`apply --dry-run` is not one: it compares with what the target holds now.)
        // Nor are a hook's deliveries (its journal moves without the log), nor `ps` (its ready
        // counts are the cluster's).
        let cacheable = request.is_query()
            && !matches!(
                request,
                Request::Apply { .. } | Request::HooksDeliveries { .. } | Request::Ps { .. }
            );
        let cached = match (cacheable, self.settled_head()) {
            (true, Some(head)) => Some((
                head,
                format!("{:?}|{request:?}|{width:?}", caller.principal),
            )),
            _ => None,
        };
        if let Some((head, key)) = &cached {
            if let Some(answer) = self.answers.get(*head, key) {
                return Ok(answer);
            }
        }
        let answer = self.answer_now(caller, request, width).await?;
        if let Some((head, key)) = cached {
            self.answers.put(head, key, &answer);
        }
        Ok(answer)
    }

    async fn answer_now(&self, caller: &Caller, request: Request, width: Width) -> Result<Answer> {
        let who = &caller.principal;
        Ok(match request {
            Request::AppsCreate { app, envs } => {
                let command = Command::CreateApp { pipeline: envs };
                let state = self.execute(caller, &app, command).await?.state;
                Answer::of(&AppView::new(&app, &state), human::created(&app, &state))
            }
            Request::AppsList => {
                let apps = self.apps(who).await?;
                let views: Vec<_> = apps.iter().map(|(a, s)| AppView::new(a, s)).collect();
                Answer::of(&views, human::apps(&apps, width))
            }
            Request::AppsShow { app } => {
                let state = self.app(who, &app, None).await?;
                let view = AppView::new(&app, &state);
                Answer::of(&view, human::app(&view, width))
            }
            Request::BuildsRegister {
                app,
                image,
                commit,
                note,
                processes,
                release_command,
            } => {
                let id = Build::id_for(&image, &processes, release_command.as_deref());
                let command = Command::RegisterBuild {
                    image,
                    commit,
                    note,
                    processes,
                    release_command,
                };
                let executed = self.execute(caller, &app, command).await?;
                let build = &executed.state.builds[&id];
                let registered = !executed.events.is_empty();
                Answer::of(
                    &views::build_json(&app, build, registered),
                    human::build(&app, build, registered),
                )
            }
            Request::Deploy { app, env, artifact } => {
                self.release(caller, &app, Command::Deploy { env, artifact })
                    .await?
            }
            Request::ConfigSet {
                app,
                env,
                values,
                secret,
            } => {
                let values = if secret {
                    // Asked before sealing: a caller who may not change config seals nothing
                    // (and so creates no key on a store without secrets).
                    self.allowed(who, Action::Config, &Scope::env(&app, &env))?;
                    self.seal(&app, values).await?
                } else {
                    let plain = |(key, value)| (key, ConfigValue::Plain(value));
                    values.into_iter().map(plain).collect()
                };
                let values = values.into_iter().collect();
                self.release(caller, &app, Command::SetConfig { env, values })
                    .await?
            }
            Request::ConfigUnset { app, env, keys } => {
                self.release(caller, &app, Command::UnsetConfig { env, keys })
                    .await?
            }
            Request::ConfigGet { app, env, reveal } => {
                let shown = self.config(who, &app, &env, reveal).await?;
                Answer::of(&shown.json(), human::config(&shown))
            }
            Request::Promote { app, from, to } => {
                self.release(caller, &app, Command::Promote { from, to })
                    .await?
            }
            Request::Rollback { app, env, to } => {
                self.release(caller, &app, Command::Rollback { env, to })
                    .await?
            }
            Request::Releases {
                app,
                env,
                at,
                limit,
            } => {
                let limit = limit.unwrap_or(usize::MAX);
                let records = self.releases(who, &app, &env, at, limit).await?;
                let releases: Vec<ReleaseView> = records
                    .iter()
                    .map(|r| ReleaseView::new(&app, &env, r))
                    .collect();
                Answer::of(&releases, human::releases(&app, &env, &releases, width))
            }
            Request::Status { app, at } => {
                let status = self.status(who, &app, at).await?;
                Answer::of(&status.view(), status.human(width))
            }
            Request::Diff { app, env, from, to } => {
                let diff = self.diff(who, &app, &env, from, to).await?;
                Answer::of(&diff.json(), diff.human())
            }
            Request::Lock { app, env, reason } => {
                let lock = Command::Lock {
                    env: env.clone(),
                    reason,
                };
                self.lock_answer(caller, &app, &env, lock).await?
            }
            Request::Unlock { app, env } => {
                let unlock = Command::Unlock { env: env.clone() };
                self.lock_answer(caller, &app, &env, unlock).await?
            }
            Request::Audit { query, limit } => {
                let limit = limit.unwrap_or(usize::MAX);
                let entries = self.audit(who, &query, limit).await?;
                Answer::of(&entries, human::audit(&entries, width))
            }
            Request::AuditVerify { app } => {
                let verified = self.verify(who, app.as_ref()).await?;
                Answer::of(&verified.json(), verified.human())
            }
            Request::EnvsTarget { app, env, target } => {
                let set = Command::SetTarget {
                    env: env.clone(),
                    target: target.clone(),
                };
                let changed = !self.execute(caller, &app, set).await?.events.is_empty();
                Answer::of(
                    &views::target_json(&app, &env, &target, changed),
                    human::target(&app, &env, &target, changed),
                )
            }
            Request::EnvsPolicy { app, env, changes } => {
                let set = Command::SetPolicies {
                    env: env.clone(),
                    changes,
                };
                let executed = self.execute(caller, &app, set).await?;
                let changed = !executed.events.is_empty();
                let now = &executed.state.envs[&env];
                Answer::of(
                    &views::policy_json(
                        &app,
                        &env,
                        now.auto_rollback,
                        &now.pipeline_policy,
                        changed,
                    ),
                    human::policy(&app, &env, now.auto_rollback, &now.pipeline_policy),
                )
            }
            Request::Apply {
                app,
                env,
                options,
                dry_run,
            } => {
                if dry_run {
                    let planned = self.plan(who, &app, &env).await?;
                    Answer::of(&planned.json(), planned.human())
                } else {
                    let context = self.reconcile_context(options);
                    let reconciled = self.reconcile(who, &app, &env, &context).await?;
                    let mut answer = Answer::of(&reconciled, reconciled.human());
                    answer.failure = reconciled.failure();
                    answer
                }
            }
            Request::TokenCreate {
                identity,
                name,
                expires_at,
            } => {
                let new = self
                    .access_token_create(caller, &identity, name, expires_at)
                    .await?;
                Answer::of(&views::new_token_json(&new), human::new_token(&new))
            }
            Request::TokenList { identity } => {
                let tokens = self.access_token_list(who, identity.as_ref()).await?;
                let json: Vec<_> = tokens.iter().map(views::token_json).collect();
                Answer::of(&json, human::tokens(&tokens, width))
            }
            Request::TokenRevoke { id } => {
                let token = self.access_token_revoke(caller, &id).await?;
                Answer::of(&views::token_json(&token), human::token_revoked(&token))
            }
            Request::Grant { identity, grant } => {
                let granted = self.access_grant(caller, &identity, grant).await?;
                Answer::of(&views::granted_json(&granted), human::granted(&granted))
            }
            Request::Revoke { identity, grant } => {
                let revoked = self.access_revoke(caller, &identity, grant).await?;
                Answer::of(
                    &views::revoked_grant_json(&revoked),
                    human::revoked_grant(&revoked),
                )
            }
            Request::AccessList { identity, app } => {
                let grants = self
                    .access_list(who, identity.as_ref(), app.as_ref())
                    .await?;
                let json: Vec<_> = grants.iter().map(views::grant_json).collect();
                Answer::of(&json, human::grants(&grants, width))
            }
            Request::Link { chat_id, identity } => {
                let linked = self.access_link(caller, &chat_id, &identity).await?;
                Answer::of(&views::linked_json(&linked), human::linked(&linked))
            }
            Request::Unlink { chat_id } => {
                let linked = self.access_unlink(caller, &chat_id).await?;
                Answer::of(&views::linked_json(&linked), human::linked(&linked))
            }
            Request::AccessCheck {
                identity,
                action,
                scope,
            } => {
                let verdict = self.access_check(who, &identity, action, &scope).await?;
                Answer::of(&verdict, human::verdict(&verdict))
            }
            Request::HooksAdd { add } => {
                let added = self.hooks_add(caller, add).await?;
                Answer::of(&added, human::hook_added(&added))
            }
            Request::HooksList => {
                let hooks = self.hooks_list(who).await?;
                let views: Vec<_> = hooks.iter().map(crate::hooks::HookView::new).collect();
                Answer::of(&views, human::hooks(&views, width))
            }
            Request::HooksRemove { name } => {
                let removed = self.hooks_remove(caller, &name).await?;
                Answer::of(
                    &crate::hooks::HookView::new(&removed),
                    human::hook_removed(name.as_str()),
                )
            }
            Request::HooksTest { name } => {
                let pinged = self.hooks_test(caller, &name).await?;
                let mut answer = Answer::of(&pinged, human::pinged(&pinged));
                if !pinged.ok {
                    let why = match (pinged.status, &pinged.error) {
                        (Some(status), _) => format!("HTTP {status}"),
                        (None, error) => error.clone().unwrap_or_default(),
                    };
                    answer.failure = Some(Error::rejected(format!(
                        "hook {name}: the endpoint did not accept the ping: {}",
                        crate::text::escape(&why)
                    )));
                }
                answer
            }
            Request::HooksDeliveries { name, limit } => {
                let deliveries = self
                    .hooks_deliveries(who, &name, limit.unwrap_or(usize::MAX))
                    .await?;
                let views: Vec<_> = deliveries
                    .iter()
                    .map(crate::hooks::DeliveryView::new)
                    .collect();
                Answer::of(&views, human::deliveries(&views, width))
            }
            Request::HooksRedeliver { name, delivery } => {
                let redelivery = self.hooks_redeliver(caller, &name, delivery).await?;
                Answer::of(&redelivery, human::redelivery(&redelivery))
            }
            Request::HooksRotate { name, secret, keep } => {
                let rotated = self.hooks_rotate(caller, &name, secret, keep).await?;
                Answer::of(&rotated, human::rotated(&rotated))
            }
            // issue 16
            Request::Pin { app, env, reason } => {
                let pin = Command::Pin {
                    env: env.clone(),
                    reason,
                };
                self.pin_answer(caller, &app, &env, pin).await?
            }
            Request::Unpin { app, env } => {
                let unpin = Command::Unpin { env: env.clone() };
                self.pin_answer(caller, &app, &env, unpin).await?
            }
            Request::RollbackLastHealthy { app, env } => {
                self.release(caller, &app, Command::RollbackToLastHealthy { env })
                    .await?
            }
            Request::PromoteForced { app, from, to } => {
                self.release(caller, &app, Command::PromoteForced { from, to })
                    .await?
            }
            Request::Drift { app, env } => {
                let drift = self.drift(caller, &app, &env).await?;
                Answer::of(&drift.json(), drift.human())
            }
            // issue 14
            Request::Ps { app, env } => {
                let ps = self.ps(who, &app, &env).await?;
                Answer::of(&ps.rows, formation::human::ps(&ps))
            }
            Request::PsScale { app, env, replicas } => {
                let ps = self.ps_scale(caller, &app, &env, replicas).await?;
                Answer::of(&ps.rows, formation::human::scaled(&ps))
            }
            Request::DomainsAdd { app, env, host } => {
                let human = format!("Added {host} to {app}/{env} (routed to its web process)\n");
                let domains = self.domains_add(caller, &app, &env, host).await?;
                Answer::of(&domains, human)
            }
            Request::DomainsRemove { app, env, host } => {
                let human = format!("Removed {host} from {app}/{env}\n");
                let domains = self.domains_remove(caller, &app, &env, host).await?;
                Answer::of(&domains, human)
            }
            Request::DomainsList { app, env } => {
                let domains = self.domains_list(who, &app, &env).await?;
                let human = formation::human::domains(&app, &env, &domains);
                Answer::of(&domains, human)
            }
        })
    }

    // issue 16
    /// `pin` and `unpin`: the env's pin after the command.
    async fn pin_answer(
        &self,
        caller: &Caller,
        app: &AppName,
        env: &EnvName,
        command: Command,
    ) -> Result<Answer> {
        let state = self.execute(caller, app, command).await?.state;
        let pin = state.envs[env].pin.as_ref();
        Ok(Answer::of(
            &views::pin_json(app, env, pin),
            human::pin(app, env, pin),
        ))
    }

    /// Runs a command that creates a release, and answers with that release.
    async fn release(&self, caller: &Caller, app: &AppName, command: Command) -> Result<Answer> {
        let executed = self.execute(caller, app, command).await?;
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
        Ok(Answer::of(&view, human::released(&view)))
    }

    /// `lock` and `unlock`: the env's lock after the command.
    async fn lock_answer(
        &self,
        caller: &Caller,
        app: &AppName,
        env: &EnvName,
        command: Command,
    ) -> Result<Answer> {
        let state = self.execute(caller, app, command).await?.state;
        let lock = state.envs[env].lock.as_ref();
        Ok(Answer::of(
            &views::lock_json(app, env, lock),
            human::lock(app, env, lock),
        ))
    }

    /// A reconcile context for `options`, with the hooks the front end set
    /// ([`Hoist::with_reconcile_hooks`]).
    pub fn reconcile_context(&self, options: Options) -> Context {
        let mut context = Context::new(options);
        context.pause_after_apply = self.hooks.pause_after_apply.clone();
        if let Some(patience) = self.hooks.record_patience {
            context.record_patience = patience;
        }
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bytes: usize) -> Answer {
        Answer {
            json: "x".repeat(bytes),
            human: String::new(),
            failure: None,
        }
    }

    /// An answer is given again only at the log sequence it was made at; the cache never holds
    /// more than its bound, and a very large answer is not kept.
    #[test]
    fn answers_are_kept_per_sequence_and_within_their_bound() {
        let cache = AnswerCache::default();
        cache.put(7, "status api".into(), &answer(10));
        assert!(cache.get(7, "status api").is_some());
        assert!(cache.get(8, "status api").is_none(), "the log moved");
        assert!(cache.get(7, "status web").is_none());
        cache.put(7, "huge".into(), &answer(LARGEST_CACHED + 1));
        assert!(cache.get(7, "huge").is_none());
        for n in 0..(CACHED_BYTES / (LARGEST_CACHED / 2)) * 3 {
            cache.put(7, format!("q{n}"), &answer(LARGEST_CACHED / 2));
            let bytes = cache.0.lock().unwrap().bytes;
            assert!(bytes <= CACHED_BYTES, "{bytes}");
        }
        // Replacing an answer counts its bytes once.
        let cache = AnswerCache::default();
        cache.put(1, "k".into(), &answer(100));
        cache.put(2, "k".into(), &answer(100));
        assert_eq!(cache.0.lock().unwrap().bytes, 101);
    }
}
