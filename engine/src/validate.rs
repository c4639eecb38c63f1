//! Whether a recorded event could have happened: the rules `decide` keeps when it makes events,
//! stated on the events themselves, for histories hoist did not make (an import, later an API).
//! `apply` trusts every event it folds; `check_event` is what it trusts them to keep: one
//! `app_created`, first; envs in the pipeline; versions per env contiguous from v1; rollback
//! targets and promotion sources that exist; locks taken and released in turn; and the size
//! limits `decide` keeps on what a command enters (`check_limits`), on every field of every
//! event. The access chain's events are `access::check_event`'s, and never on an app's chain.
//!
//! **Invariant**: every event `decide` returns passes `check_event` on the state it was decided
//! on (engine/tests/import.rs checks it over random command sequences).

use crate::decide::{check_limits, check_target, create_app, DomainError, Rules};
use crate::event::{Build, Config, Event, ReleaseKind};

/// The config of an env with no release yet.
static EMPTY: Config = Config::new();
use crate::names::{AppName, EnvName, ReleaseVersion};
use crate::state::{AppState, EnvState};

/// `Ok` if `event` could follow the history folded into `state`, else the rule it breaks.
pub fn check_event(app: &AppName, state: &AppState, event: &Event) -> Result<(), DomainError> {
    if event.is_access() {
        return Err(DomainError::WrongChain {
            chain: app.clone(),
            kind: event.kind(),
            belongs: "the access chain",
        });
    }
    check_limits(app, state, event)?;
    if let Event::AppCreated { envs } = event {
        return create_app(app, state, envs).map(drop);
    }
    if !state.exists() {
        return Err(DomainError::NotCreated(app.clone()));
    }
    let rules = Rules { app, state };
    match event {
        Event::AppCreated { .. } => unreachable!("handled above"),
        Event::BuildRegistered { build } => {
            let malformed = |rule| DomainError::MalformedBuild {
                app: app.clone(),
                build: build.id.clone(),
                rule,
            };
            let id = Build::id_for(
                &build.image,
                &build.processes,
                build.release_command.as_deref(),
            );
            if build.id != id {
                return Err(malformed("its id is not its image's and formation's"));
            }
            crate::decide::check_processes(&build.processes, build.release_command.as_deref())?;
            if state.build_seqs.contains_key(&build.id) {
                return Err(malformed("it is already registered"));
            }
        }
        Event::ReleaseCreated { env, release } => {
            // A lock freezes changes, not recovery: rollbacks pass a lock, as in `decide`.
            let current = match release.kind {
                ReleaseKind::Rollback => rules.env(env)?,
                _ => rules.unlocked_env(env)?,
            };
            let expected = current.next_version();
            if release.version != expected {
                return Err(DomainError::VersionOutOfOrder {
                    app: app.clone(),
                    env: env.clone(),
                    version: release.version,
                    expected,
                });
            }
            let malformed = |rule| DomainError::MalformedRelease {
                app: app.clone(),
                env: env.clone(),
                version: release.version,
                rule,
            };
            let latest = current.current().map(|r| r.release.version);
            if release.kind != ReleaseKind::Rollback && release.rollback_to.is_some() {
                return Err(malformed("only a rollback names a version to roll back to"));
            }
            if release.kind != ReleaseKind::Promote && release.source.is_some() {
                return Err(malformed("only a promotion names a source"));
            }
            match release.kind {
                ReleaseKind::Rollback => {
                    let Some(to) = release.rollback_to else {
                        return Err(malformed("a rollback names the version it rolls back to"));
                    };
                    if !current.has_release(to) {
                        return Err(unknown_version(app, env, to, current));
                    }
                    if Some(to) == latest {
                        return Err(DomainError::NothingToRollBack {
                            app: app.clone(),
                            env: env.clone(),
                            why: format!("{to} is already the current release"),
                        });
                    }
                }
                ReleaseKind::Promote => {
                    let Some(source) = &release.source else {
                        return Err(malformed("a promotion names its source"));
                    };
                    if source.env == *env {
                        return Err(DomainError::PromoteToSelf {
                            app: app.clone(),
                            env: env.clone(),
                        });
                    }
                    let from = rules.env(&source.env)?;
                    if !from.has_release(source.version) {
                        return Err(unknown_version(app, &source.env, source.version, from));
                    }
                    if release.build.is_none() {
                        return Err(malformed("a promotion carries a build"));
                    }
                }
                ReleaseKind::Deploy if release.build.is_none() => {
                    return Err(malformed("a deploy carries a build"));
                }
                ReleaseKind::Deploy | ReleaseKind::Config => {}
            }
            // Only a config change changes config: a deploy and a promotion keep the env's own,
            // a rollback takes the one of the release it goes back to (as `decide` makes them).
            let copied = match release.kind {
                ReleaseKind::Config => None,
                ReleaseKind::Rollback => release
                    .rollback_to
                    .and_then(|to| current.release(to))
                    .map(|r| &r.release.config),
                ReleaseKind::Deploy | ReleaseKind::Promote => Some(
                    current
                        .current()
                        .map(|r| &r.release.config)
                        .unwrap_or(&EMPTY),
                ),
            };
            if copied.is_some_and(|config| *config != release.config) {
                return Err(malformed("its config is not the one it copies"));
            }
        }
        Event::EnvLocked { env, reason } => {
            rules.unlocked_env(env)?;
            if reason.trim().is_empty() {
                return Err(DomainError::EmptyReason);
            }
        }
        Event::EnvUnlocked { env } => {
            if rules.env(env)?.lock.is_none() {
                return Err(DomainError::NotLocked {
                    app: app.clone(),
                    env: env.clone(),
                });
            }
        }
        Event::TargetSet { env, target } => {
            rules.env(env)?;
            check_target(app, env, target)?;
        }
        Event::PolicySet { env, .. } => {
            rules.env(env)?;
        }
        Event::RolloutRecorded { env, version, .. } => {
            let current = rules.env(env)?;
            if !current.has_release(*version) {
                return Err(unknown_version(app, env, *version, current));
            }
        }
        // issue 16
        Event::EnvPinned { env, .. } | Event::PipelinePolicySet { env, .. } => {
            rules.env(env)?;
        }
        Event::EnvUnpinned { env } => {
            if rules.env(env)?.pin.is_none() {
                return Err(DomainError::NotPinned {
                    app: app.clone(),
                    env: env.clone(),
                });
            }
        }
        Event::PromotionVerified {
            env, from, version, ..
        } => {
            rules.env(env)?;
            let source = rules.env(from)?;
            if !source.has_release(*version) {
                return Err(unknown_version(app, from, *version, source));
            }
        }
        Event::DriftDetected { env, version, .. } | Event::DriftHealed { env, version, .. } => {
            let current = rules.env(env)?;
            if !current.has_release(*version) {
                return Err(unknown_version(app, env, *version, current));
            }
        }
        Event::TokenCreated { .. }
        | Event::TokenRevoked { .. }
        | Event::RoleGranted { .. }
        | Event::RoleRevoked { .. }
        | Event::ChatLinked { .. }
        | Event::ChatUnlinked { .. }
        | Event::HookAdded { .. }
        | Event::HookRemoved { .. }
        | Event::HookDisabled { .. }
        | Event::HookRedeliveryRequested { .. }
        | Event::HookSecretRotated { .. } => unreachable!("refused above"),
        // issue 14
        Event::ScaleSet { env, replicas } => {
            crate::decide::check_scale(app, env, rules.env(env)?, replicas)?;
        }
        Event::DomainAdded { env, host } => {
            crate::decide::check_domain_added(app, state, env, host)?;
        }
        Event::DomainRemoved { env, host } => {
            if !rules.env(env)?.domains.contains(host) {
                return Err(DomainError::DomainNotFound {
                    app: app.clone(),
                    env: env.clone(),
                    host: host.clone(),
                });
            }
        }
    }
    Ok(())
}

fn unknown_version(
    app: &AppName,
    env: &EnvName,
    version: ReleaseVersion,
    of: &EnvState,
) -> DomainError {
    DomainError::UnknownVersion {
        app: app.clone(),
        env: env.clone(),
        version,
        latest: of
            .current()
            .map_or("none".into(), |r| r.release.version.to_string()),
    }
}
