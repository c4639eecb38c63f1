//! Pipelines that move on their own (issue 16), at the edge: `hoist drift` and the drift check
//! of `serve`'s resync (the target compared with the applied release through the adapters,
//! what is found recorded through the engine once, and healed when the env's policy says so),
//! and one auto-promotion (its verification command run, then the promotion decided under the
//! app's expected sequence, so of several `serve` instances only the first promotes).
//!
//! The rules are the engine's (`hoist_engine::pipeline`); this module does the I/O they need.

use crate::error::{Error, Result};
use crate::queries::env_of;
use crate::reconcile::{Context, RECONCILER};
use crate::text::escape;
use crate::views::ReleaseView;
use crate::{Caller, Hoist};
use hoist_adapters::target::{self, Applying};
use hoist_engine::pipeline::DuePromotion;
use hoist_engine::service::CommandContext;
use hoist_engine::{
    authorize, Action, Actor, AppName, Command, DriftedObject, EnvName, Event, Principal,
    ReleaseRecord, Scope, Target, Verification,
};
use serde_json::{json, Value};

/// What `hoist drift` found.
#[derive(Debug)]
pub struct Drifted {
    pub app: AppName,
    pub env: EnvName,
    /// The release compared with: the one last applied.
    pub version: u64,
    /// Whether the target's kind can be compared at all (an exec hook cannot).
    pub checked: bool,
    pub objects: Vec<DriftedObject>,
}

impl Drifted {
    /// CLI.md's `{"drifted", "objects": [{"kind", "name", "fields": [{"path", "want", "got"}]}]}`,
    /// with the app, env and version compared, whether the target can be compared, and each
    /// field's owner (`by`) when the target names one.
    pub fn json(&self) -> Value {
        json!({
            "app": self.app, "env": self.env, "version": self.version,
            "drifted": !self.objects.is_empty(), "checked": self.checked,
            "objects": self.objects,
        })
    }

    pub fn human(&self) -> String {
        let (app, env, version) = (&self.app, &self.env, self.version);
        if !self.checked {
            return format!(
                "{app}/{env}: an exec target has no drift detection (v{version} was handed to its command)\n"
            );
        }
        if self.objects.is_empty() {
            return format!("{app}/{env}: no drift: the target holds v{version}\n");
        }
        let mut text = format!("{app}/{env} has drifted from v{version}:\n");
        for object in &self.objects {
            text.push_str(&format!(
                "  {}/{}\n",
                escape(&object.kind),
                escape(&object.name)
            ));
            for field in &object.fields {
                let got = field.got.as_deref().unwrap_or("(absent)");
                let by = field
                    .by
                    .as_ref()
                    .map(|by| format!(" (by {})", escape(by)))
                    .unwrap_or_default();
                let path = if field.path.is_empty() {
                    "(whole)"
                } else {
                    &field.path
                };
                text.push_str(&format!(
                    "    {}: want {}, got {}{by}\n",
                    escape(path),
                    escape(&field.want),
                    escape(got)
                ));
            }
        }
        text
    }
}

/// What a drift check of `serve` did.
#[derive(Debug, PartialEq, Eq)]
pub enum DriftCheck {
    /// The target cannot be compared, or holds no applied release yet.
    Skipped,
    Clean,
    /// Drift found and recorded now, left as it is: self-heal is off.
    Recorded,
    /// The drift recorded before, still there: self-heal is off.
    Unchanged,
    /// Drift found, recorded, re-applied and recorded healed.
    Healed,
}

/// The context of what the reconciler records: actor `hoist`, on behalf of `principal`.
fn machine(principal: &Principal, via: Option<String>) -> Result<CommandContext> {
    let mut context = CommandContext::new(RECONCILER.parse::<Actor>()?);
    context.principal = principal.clone();
    context.via = via;
    Ok(context)
}

impl Hoist {
    /// `hoist drift`: the env's target compared with the release last applied to it. A drift
    /// found is recorded (once) when the caller may apply there; a viewer only sees it.
    pub async fn drift(&self, caller: &Caller, app: &AppName, env: &EnvName) -> Result<Drifted> {
        let who = &caller.principal;
        self.allowed(who, Action::View, &Scope::env(app, env))?;
        let (target, record, where_) = self.applied(who, app, env).await?;
        let found = self.compare(app, env, &target, &record, &where_).await?;
        let version = record.release.version;
        let may_record = authorize(who, &Action::Apply, &Scope::env(app, env)).is_ok();
        if let (Some(objects), true) = (&found, may_record) {
            let command = Command::RecordDrift {
                env: env.clone(),
                version,
                objects: objects.clone(),
            };
            self.execute_in(app, &command, &machine(who, caller.via.clone())?)
                .await?;
        }
        Ok(Drifted {
            app: app.clone(),
            env: env.clone(),
            version: version.get(),
            checked: found.is_some(),
            objects: found.unwrap_or_default(),
        })
    }

    /// The env's target and the release last applied to it.
    async fn applied(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
    ) -> Result<(Target, ReleaseRecord, hoist_engine::EnvState)> {
        let state = self.app(principal, app, None).await?;
        let env_state = env_of(app, &state, env)?;
        if env_state.target == Target::None {
            return Err(Error::rejected(format!(
                "{app}/{env} has no target to compare: set one with `hoist envs target`"
            )));
        }
        let record = env_state
            .rollout
            .as_ref()
            .and_then(|r| env_state.release(r.version))
            .ok_or_else(|| {
                Error::rejected(format!(
                    "{app}/{env} has no release applied to its target yet (see `hoist apply`)"
                ))
            })?;
        Ok((env_state.target.clone(), record.clone(), env_state.clone()))
    }

    /// What the target holds that differs from `record` (rendered with the formation of the env
    /// `where_`: its scale and domains); `None` when it cannot be compared.
    async fn compare(
        &self,
        app: &AppName,
        env: &EnvName,
        target: &Target,
        record: &ReleaseRecord,
        where_: &hoist_engine::EnvState,
    ) -> Result<Option<Vec<DriftedObject>>> {
        let key = self.key_for(record)?;
        let formation = where_.formation(record);
        let applying = Applying {
            app,
            env,
            record,
            key: key.as_ref(),
            release_json: Vec::new(),
            formation: &formation,
        };
        Ok(target::drift(target, &applying).await?)
    }

    /// `serve`'s drift check of an env whose current release was applied: drift recorded once,
    /// and with self-heal on, the release applied again and the healing recorded.
    pub async fn check_drift(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
        ctx: &Context,
    ) -> Result<DriftCheck> {
        self.allowed(principal, Action::Apply, &Scope::env(app, env))?;
        let state = self.app(principal, app, None).await?;
        let env_state = env_of(app, &state, env)?;
        // Only an env whose current release was applied: a pending one is the reconciler's, and
        // one whose rollout failed is what auto-rollback (or a person) answers, not self-heal.
        let failed = env_state
            .rollout
            .as_ref()
            .is_none_or(|r| r.outcome == hoist_engine::Outcome::Failed);
        if env_state.pending().is_some() || failed {
            return Ok(DriftCheck::Skipped);
        }
        let Some(record) = env_state.current().cloned() else {
            return Ok(DriftCheck::Skipped);
        };
        let target = env_state.target.clone();
        let self_heal = env_state.pipeline_policy.self_heal;
        let Some(objects) = self.compare(app, env, &target, &record, env_state).await? else {
            return Ok(DriftCheck::Skipped);
        };
        let version = record.release.version;
        let context = machine(principal, None)?;
        let drifted = !objects.is_empty();
        let command = Command::RecordDrift {
            env: env.clone(),
            version,
            objects,
        };
        let recorded = self.execute_in(app, &command, &context).await?;
        if !drifted {
            return Ok(DriftCheck::Clean);
        }
        if let Some(event) = recorded.events.first() {
            tracing::warn!(%app, %env, %version, event = %event.envelope.id, "drift detected");
        }
        if !self_heal {
            return Ok(if recorded.events.is_empty() {
                DriftCheck::Unchanged
            } else {
                DriftCheck::Recorded
            });
        }
        let report = self
            .apply_release(app, env, &target, &record, env_state, ctx)
            .await?;
        if report.outcome == hoist_engine::Outcome::Failed {
            // Not healed: the drift stays recorded, and the next resync tries again.
            return Err(Error::rejected(format!(
                "{app}/{env}: re-applying {version} to heal its drift failed: {}",
                report.detail.replace('\n', "; ")
            )));
        }
        let mut heal_context = machine(principal, None)?;
        // Caused by the drift it heals, when this check recorded it (an earlier look may have).
        heal_context.causation_id = recorded.events.first().map(|r| r.envelope.id);
        let healed = Command::RecordHealed {
            env: env.clone(),
            version,
            detail: format!(
                "re-applied {version}: {}",
                report.detail.replace('\n', "; ")
            ),
        };
        self.execute_in(app, &healed, &heal_context).await?;
        tracing::info!(%app, %env, %version, "drift healed");
        Ok(DriftCheck::Healed)
    }

    /// One auto-promotion `serve` found due: the verification command first (when the target
    /// env has one; its outcome is recorded with the decision), then the promotion, as actor
    /// `hoist`, caused by the healthy outcome. Returns the release created, if any (none: another
    /// instance promoted it first, or the verification refused it).
    pub async fn auto_promote(
        &self,
        principal: &Principal,
        app: &AppName,
        due: &DuePromotion,
        ctx: &Context,
    ) -> Result<Option<u64>> {
        self.allowed(principal, Action::Apply, &Scope::env(app, &due.to))?;
        let verification = match &due.verify {
            None => None,
            Some(command) => Some(
                self.verify_promotion(principal, app, due, command, ctx)
                    .await?,
            ),
        };
        let mut context = machine(principal, None)?;
        context.causation_id = due.cause;
        let command = Command::AutoPromote {
            from: due.from.clone(),
            to: due.to.clone(),
            version: due.version,
            at: context.at,
            verification,
        };
        let executed = self.execute_in(app, &command, &context).await?;
        Ok(executed
            .events
            .iter()
            .find_map(|r| match &r.envelope.event {
                Some(Event::ReleaseCreated { release, .. }) => Some(release.version.get()),
                _ => None,
            }))
    }

    /// Runs `command` with the source release's JSON on stdin: exit 0 verifies it.
    async fn verify_promotion(
        &self,
        principal: &Principal,
        app: &AppName,
        due: &DuePromotion,
        command: &str,
        ctx: &Context,
    ) -> Result<Verification> {
        let state = self.app(principal, app, None).await?;
        let source = env_of(app, &state, &due.from)?;
        let record = source
            .release(due.version)
            .ok_or_else(|| Error::rejected(format!("{app}/{} has no {}", due.from, due.version)))?;
        let view = ReleaseView::new(app, &due.from, record);
        let hook = hoist_adapters::exec::Hook {
            command,
            release_json: serde_json::to_vec(&view).expect("views serialize"),
            app: app.as_str(),
            env: due.to.as_str(),
            version: due.version.get(),
            image: record
                .release
                .build
                .as_ref()
                .map_or("", |b| b.image.as_str()),
            timeout: ctx.options.timeout,
            pass_env: Vec::new(),
        };
        let report = hoist_adapters::exec::run(hook)
            .await
            .map_err(|e| Error::rejected(e.to_string()))?;
        Ok(Verification {
            passed: report.outcome != hoist_engine::Outcome::Failed,
            detail: report.detail,
        })
    }
}
