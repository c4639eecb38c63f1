//! Pipelines that move on their own (issue 16), as pure rules: which releases are due for
//! auto-promotion ([`due_promotions`], what `serve` asks of every app it looks at), the decision
//! of one auto-promotion ([`auto_promote`], what `decide` runs under the log's expected
//! sequence, so that of several `serve` instances racing only the first promotes), the release
//! a `rollback --to last-healthy` goes to ([`last_healthy`], the rule auto-rollback uses), and
//! the recording of drift once ([`record_drift`]). No clock: the time comes in with the command.

use crate::decide::{promote, DomainError, Rules, Verification};
use crate::event::{DriftedObject, Event, Outcome};
use crate::names::{EnvName, ReleaseVersion};
use crate::state::{AppState, EnvState};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// The release `rollback --to last-healthy` and auto-rollback go to: the env's last release
/// whose rollout was recorded healthy.
pub fn last_healthy(env: &EnvState) -> Option<ReleaseVersion> {
    env.last_healthy
}

/// A release that auto-promotion will move into `to`, once `due_at` has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePromotion {
    pub from: EnvName,
    pub to: EnvName,
    pub version: ReleaseVersion,
    /// When its healthy outcome plus the span has passed.
    pub due_at: DateTime<Utc>,
    /// The event that recorded the release healthy: the promotion's cause.
    pub cause: Option<Uuid>,
    /// The verification command to run first, if `to` has one.
    pub verify: Option<String>,
}

/// Why `from`'s current release is not (or not yet) promoted into `to`, or `None` when it is to
/// be, now or at its due time. The one statement of the rule that both [`due_promotions`] and
/// [`auto_promote`] keep.
fn refusal(state: &AppState, from: &EnvName, to: &EnvName, version: ReleaseVersion) -> Refusal {
    let (Some(source), Some(target)) = (state.env(from), state.env(to)) else {
        return Refusal::Not("an env is not in the pipeline".into());
    };
    if state.next_env(from) != Some(to) {
        return Refusal::Not(format!("{from} is not the env before {to}"));
    }
    if !target.pipeline_policy.auto_promote {
        return Refusal::Not(format!("auto-promotion into {to} is off"));
    }
    if target.lock.is_some() {
        return Refusal::Locked;
    }
    if target.pin.is_some() {
        return Refusal::Pinned;
    }
    // Once per source release: promoted before (by anyone), or refused by its verification.
    let promoted = target.promoted.contains(from, version);
    if promoted
        || target
            .failed_verifications
            .contains(&(from.clone(), version))
    {
        return Refusal::Done;
    }
    let current = source.current().map(|r| r.release.version);
    if current != Some(version) {
        return Refusal::Not(format!(
            "{version} is not {from}'s current release ({})",
            current.map_or("none".into(), |v| v.to_string())
        ));
    }
    if source
        .current()
        .and_then(|r| r.release.build.as_ref())
        .is_none()
    {
        return Refusal::Not(format!("{from} {version} has no image"));
    }
    match &source.rollout {
        Some(r) if r.version == version && r.outcome == Outcome::Healthy => {
            // A span past what a time can hold is "never" (no overflow, no panic).
            let span = i64::try_from(target.pipeline_policy.after_secs)
                .ok()
                .and_then(Duration::try_seconds);
            let due = span.and_then(|span| r.at.checked_add_signed(span));
            Refusal::DueAt(due.unwrap_or(DateTime::<Utc>::MAX_UTC))
        }
        _ => Refusal::Not(format!("{from} {version} is not recorded healthy")),
    }
}

enum Refusal {
    /// Not promoted, for this reason.
    Not(String),
    Locked,
    Pinned,
    /// Promoted (or refused by its verification) already: nothing more to do, ever.
    Done,
    /// To be promoted at this time.
    DueAt(DateTime<Utc>),
}

/// The auto-promotions `state` asks for, due now or later: for each env with auto-promotion on,
/// the current release of the env before it, once it is recorded healthy, unless the env is
/// locked or pinned, or that release went there (or failed its verification) before.
pub fn due_promotions(state: &AppState) -> Vec<DuePromotion> {
    state
        .pipeline
        .windows(2)
        .filter_map(|pair| {
            let (from, to) = (&pair[0], &pair[1]);
            let source = state.env(from)?;
            let version = source.current()?.release.version;
            match refusal(state, from, to, version) {
                Refusal::DueAt(due_at) => Some(DuePromotion {
                    from: from.clone(),
                    to: to.clone(),
                    version,
                    due_at,
                    cause: source.rollout_event,
                    verify: state.env(to)?.pipeline_policy.verify.clone(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// `Command::AutoPromote`: the promotion (after the verification's event, when `to` has a
/// verification command), nothing when it happened already (another `serve` was first, or the
/// verification refused it), or why not.
pub(crate) fn auto_promote(
    rules: &Rules<'_>,
    from: &EnvName,
    to: &EnvName,
    version: ReleaseVersion,
    at: DateTime<Utc>,
    verification: Option<&Verification>,
) -> Result<Vec<Event>, DomainError> {
    let app = rules.app;
    rules.env(from)?;
    let target = rules.env(to)?;
    let not = |why: String| DomainError::NoAutoPromotion {
        app: app.clone(),
        env: to.clone(),
        why,
    };
    match refusal(rules.state, from, to, version) {
        Refusal::Not(why) => return Err(not(why)),
        // The rules of a manual promotion say it: a lock, then a pin, each with who and why.
        Refusal::Locked | Refusal::Pinned => {
            return Err(promote(rules, from, Some(to), false)
                .expect_err("a locked or pinned env refuses a promotion"))
        }
        Refusal::Done => return Ok(vec![]),
        Refusal::DueAt(due) if due > at => {
            return Err(not(format!(
                "{from} {version} is healthy, but not for the span yet (due at {})",
                due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )))
        }
        Refusal::DueAt(_) => {}
    }
    let mut events = Vec::new();
    match (&target.pipeline_policy.verify, verification) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(not(format!(
                "{to} verifies promotions: its verification of {from} {version} must come first"
            )))
        }
        (Some(_), Some(verified)) => {
            events.push(Event::PromotionVerified {
                env: to.clone(),
                from: from.clone(),
                version,
                passed: verified.passed,
                detail: verified.detail.clone(),
            });
            if !verified.passed {
                return Ok(events);
            }
        }
    }
    events.push(promote(rules, from, Some(to), false)?);
    Ok(events)
}

/// `Command::RecordDrift`: `drift_detected` when the target differs and that drift is not the
/// one already recorded; `drift_healed` when it no longer differs from a drift recorded;
/// nothing otherwise (a resync finding the same drift records nothing).
pub(crate) fn record_drift(
    rules: &Rules<'_>,
    env: &EnvName,
    version: ReleaseVersion,
    objects: &[DriftedObject],
) -> Result<Vec<Event>, DomainError> {
    let recorded = applied_env(rules, env, version)?.drift.as_ref();
    Ok(match (objects.is_empty(), recorded) {
        (true, None) => vec![],
        (true, Some(_)) => vec![Event::DriftHealed {
            env: env.clone(),
            version,
            detail: "the target holds the release again".into(),
        }],
        (false, Some(d)) if d.version == version && d.objects == objects => vec![],
        (false, _) => vec![Event::DriftDetected {
            env: env.clone(),
            version,
            objects: objects.to_vec(),
        }],
    })
}

/// `Command::RecordHealed`: `drift_healed` when a drift is recorded, else nothing.
pub(crate) fn record_healed(
    rules: &Rules<'_>,
    env: &EnvName,
    version: ReleaseVersion,
    detail: &str,
) -> Result<Vec<Event>, DomainError> {
    Ok(match applied_env(rules, env, version)?.drift {
        Some(_) => vec![Event::DriftHealed {
            env: env.clone(),
            version,
            detail: detail.to_string(),
        }],
        None => vec![],
    })
}

/// The env, when it has release `version` (what a target's drift is measured against).
fn applied_env<'a>(
    rules: &Rules<'a>,
    env: &EnvName,
    version: ReleaseVersion,
) -> Result<&'a EnvState, DomainError> {
    let env_state = rules.env(env)?;
    if !env_state.has_release(version) {
        return Err(DomainError::UnknownVersion {
            app: rules.app.clone(),
            env: env.clone(),
            version,
            latest: env_state
                .current()
                .map_or("none".into(), |r| r.release.version.to_string()),
        });
    }
    Ok(env_state)
}
