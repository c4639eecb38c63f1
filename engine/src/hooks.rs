//! Subscribers (issue 11): hooks as recorded on the access chain, which events each one takes,
//! and the state machine of one delivery. Pure: sending is `adapters::notify`'s, keeping the
//! attempts durable is `stores::journal`'s, running it all is `control::deliver`'s.
//!
//! A delivery is one event (by its id) for one hook. Its attempts are recorded outside the apps'
//! hash chains, in the hook's journal; what a delivery is now is the fold of its attempts
//! ([`Delivery::apply`]), and what an attempt's answer leads to is [`next_step`].

use crate::event::Event;
use crate::names::{Actor, AppName, EnvName, HookName};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// How a hook's deliveries are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookFormat {
    /// The Standard Webhooks spec: JSON body, `webhook-id`/`-timestamp`/`-signature` headers.
    StandardWebhooks,
    /// CloudEvents 1.0 in binary mode, plus the Standard Webhooks signature headers.
    #[serde(rename = "cloudevents")]
    CloudEvents,
    /// A Slack incoming webhook: Block Kit with a text fallback.
    Slack,
    /// A Matrix room: an `m.notice`, the event id as transaction id.
    Matrix,
}

impl HookFormat {
    pub const ALL: [HookFormat; 4] = [
        HookFormat::StandardWebhooks,
        HookFormat::CloudEvents,
        HookFormat::Slack,
        HookFormat::Matrix,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookFormat::StandardWebhooks => "standard-webhooks",
            HookFormat::CloudEvents => "cloudevents",
            HookFormat::Slack => "slack",
            HookFormat::Matrix => "matrix",
        }
    }

    /// Whether deliveries carry a `whsec_` signature (else the secret is a URL or a token).
    pub fn signs(self) -> bool {
        matches!(self, HookFormat::StandardWebhooks | HookFormat::CloudEvents)
    }
}

impl fmt::Display for HookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HookFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("invalid --format {s:?}: must be one of standard-webhooks, cloudevents, slack, matrix")
            })
    }
}

/// The kinds of events a hook takes (`--events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// New releases: deploy, config, promote, rollback.
    Release,
    /// Rollout outcomes (applied, healthy, failed), drift found and healed, verifications.
    Rollout,
    /// Locks and unlocks, pins and unpins.
    Lock,
    /// Tokens, grants and chat links.
    Access,
    /// Hooks added, removed, disabled.
    Hook,
    /// Every event, of whatever kind.
    All,
}

impl HookKind {
    pub const NAMED: [HookKind; 6] = [
        HookKind::Release,
        HookKind::Rollout,
        HookKind::Lock,
        HookKind::Access,
        HookKind::Hook,
        HookKind::All,
    ];

    /// `--events` when not given.
    pub fn defaults() -> BTreeSet<HookKind> {
        BTreeSet::from([HookKind::Release, HookKind::Rollout, HookKind::Lock])
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Release => "release",
            HookKind::Rollout => "rollout",
            HookKind::Lock => "lock",
            HookKind::Access => "access",
            HookKind::Hook => "hook",
            HookKind::All => "all",
        }
    }

    /// The kind an event is of, if any but `all`.
    pub fn of(event: &Event) -> Option<HookKind> {
        match event {
            Event::ReleaseCreated { .. } => Some(HookKind::Release),
            Event::RolloutRecorded { .. } => Some(HookKind::Rollout),
            // A pin freezes an env against promotion as a lock does against every change.
            Event::EnvLocked { .. }
            | Event::EnvUnlocked { .. }
            | Event::EnvPinned { .. }
            | Event::EnvUnpinned { .. } => Some(HookKind::Lock),
            // What runs in the target: drift and verifications are about the rollout too.
            Event::DriftDetected { .. }
            | Event::DriftHealed { .. }
            | Event::PromotionVerified { .. } => Some(HookKind::Rollout),
            Event::HookAdded { .. }
            | Event::HookRemoved { .. }
            | Event::HookDisabled { .. }
            | Event::HookRedeliveryRequested { .. }
            | Event::HookSecretRotated { .. } => Some(HookKind::Hook),
            event if event.is_access() => Some(HookKind::Access),
            _ => None,
        }
    }

    /// `--events release,rollout`: each named, none twice.
    pub fn parse_list(text: &str) -> Result<BTreeSet<HookKind>, String> {
        let mut kinds = BTreeSet::new();
        for word in text.split(',').map(str::trim) {
            let kind = HookKind::NAMED
                .into_iter()
                .find(|k| k.as_str() == word)
                .ok_or_else(|| {
                    format!("invalid --events {word:?}: each must be one of release, rollout, lock, access, hook, all")
                })?;
            kinds.insert(kind);
        }
        Ok(kinds)
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook as added: what it takes and where it sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSpec {
    pub name: HookName,
    pub format: HookFormat,
    /// The endpoint, or Matrix's homeserver; for Slack only the URL's origin (the URL is the
    /// secret).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvName>,
    pub kinds: BTreeSet<HookKind>,
    /// The `whsec_` secret, the Slack URL or the Matrix token, sealed like a secret config value
    /// (associated data: [`HookSpec::sealing_label`]).
    #[serde(with = "crate::event::base64_bytes")]
    pub sealed_secret: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

impl HookSpec {
    /// The associated data a hook's secret is sealed under: it cannot be moved to another hook.
    pub fn sealing_label(name: &HookName) -> String {
        format!("hook:{name}")
    }

    /// Whether this hook takes `event` of `app`.
    pub fn takes(&self, app: &AppName, event: &Event) -> bool {
        let kind_ok = self.kinds.contains(&HookKind::All)
            || HookKind::of(event).is_some_and(|k| self.kinds.contains(&k));
        let app_ok = self.app.as_ref().is_none_or(|a| a == app);
        let env_ok = self
            .env
            .as_ref()
            .is_none_or(|e| event.env().is_some_and(|env| env == e));
        kind_ok && app_ok && env_ok
    }
}

/// A hook in force, as the access chain's fold keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub spec: HookSpec,
    /// The id of the event that added it: its deliveries' journal is keyed by it, so a hook
    /// removed and added again under the same name starts afresh.
    pub id: Uuid,
    /// The sequence of the commit that added it: it takes the events after it.
    pub added_seq: u64,
    pub added_by: Actor,
    pub added_at: DateTime<Utc>,
    /// Why it stopped (the endpoint answered 410 Gone), if it did.
    pub disabled: Option<String>,
    /// Redeliveries asked for, by delivery, with the sequence of the request.
    pub redeliveries: Vec<(Uuid, u64)>,
    /// After `hooks rotate`: the previous sealed secret, which also signs until then.
    pub previous_secret: Option<(Vec<u8>, DateTime<Utc>)>,
}

/// Where a delivery stands (`hooks deliveries`' `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Retrying,
    Succeeded,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }

    /// Whether no more attempts follow by themselves.
    pub fn is_final(self) -> bool {
        matches!(self, DeliveryState::Succeeded | DeliveryState::Failed)
    }
}

/// What one attempt came to on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// The endpoint answered with this status (and, on 429 or 503, how long to wait).
    Status {
        status: u16,
        retry_after: Option<Duration>,
        /// A short, escaped excerpt of the body, for the delivery log.
        excerpt: String,
    },
    /// No answer: refused, reset, timed out, bad TLS.
    Transport(String),
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Succeeded,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Out of attempts (or refused for good): no more.
    Failed,
    /// 410 Gone: the hook is to be disabled, this delivery failed.
    Disable,
}

/// What attempt number `attempt` (1-based) answered at `at` leads to, under `schedule` (the
/// delays before attempts 1, 2, …: attempt n+1 waits `schedule[n]`; past its end, failed).
/// 2xx succeeds; 410 disables; 3xx and every other failure retries (redirects are not
/// followed: a hook's URL is what it was given); `Retry-After` on 429/503 is honoured when it
/// asks for longer than the schedule would wait.
pub fn next_step(
    answered: &Answered,
    attempt: u32,
    at: DateTime<Utc>,
    schedule: &[std::time::Duration],
) -> Step {
    let retry_after = match answered {
        Answered::Status { status, .. } if (200..300).contains(status) => return Step::Succeeded,
        Answered::Status { status: 410, .. } => return Step::Disable,
        Answered::Status {
            status: 429 | 503,
            retry_after,
            ..
        } => *retry_after,
        _ => None,
    };
    let Some(delay) = schedule.get(attempt as usize) else {
        return Step::Failed;
    };
    let delay = Duration::from_std(*delay).unwrap_or(Duration::MAX);
    let delay = retry_after.map_or(delay, |asked| asked.max(delay));
    Step::RetryAt(
        at.checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// The Standard Webhooks schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
/// 24 h; then failed.
pub fn default_schedule() -> Vec<std::time::Duration> {
    [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
        .into_iter()
        .map(std::time::Duration::from_secs)
        .collect()
}

/// One line of a hook's journal: an attempt and what it came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The event delivered (the delivery's id, and `webhook-id`).
    pub delivery: Uuid,
    pub seq: u64,
    pub app: AppName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvName>,
    /// The event's payload type (`release.created`).
    pub kind: String,
    /// 1, 2, … for this delivery.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Every delivery of events up to this sequence is final: where a restart resumes reading.
    pub done_through: u64,
    /// The sequence of the `hooks redeliver` request this attempt answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery: Option<u64>,
}

/// One delivery, folded from its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub seq: u64,
    pub app: AppName,
    pub env: Option<EnvName>,
    pub kind: String,
    pub attempts: u32,
    pub state: DeliveryState,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// A delivery no attempt was made for yet.
    pub fn pending(id: Uuid, seq: u64, app: AppName, env: Option<EnvName>, kind: String) -> Self {
        Delivery {
            id,
            seq,
            app,
            env,
            kind,
            attempts: 0,
            state: DeliveryState::Pending,
            last_status: None,
            last_error: None,
            next_attempt_at: None,
        }
    }

    /// Folds one attempt in: the newest attempt says where the delivery stands.
    pub fn apply(&mut self, attempt: &Attempt) {
        self.attempts = self.attempts.max(attempt.attempt);
        self.state = attempt.state;
        self.last_status = attempt.status;
        self.last_error = attempt.error.clone();
        self.next_attempt_at = attempt.next_attempt_at;
    }

    /// Every delivery a journal's attempts tell of, newest event first.
    pub fn fold(attempts: &[Attempt]) -> Vec<Delivery> {
        let mut by_id: std::collections::HashMap<Uuid, Delivery> = Default::default();
        for attempt in attempts {
            by_id
                .entry(attempt.delivery)
                .or_insert_with(|| {
                    Delivery::pending(
                        attempt.delivery,
                        attempt.seq,
                        attempt.app.clone(),
                        attempt.env.clone(),
                        attempt.kind.clone(),
                    )
                })
                .apply(attempt);
        }
        let mut deliveries: Vec<Delivery> = by_id.into_values().collect();
        deliveries.sort_by(|a, b| b.seq.cmp(&a.seq).then(b.id.cmp(&a.id)));
        deliveries
    }
}

/// The journal's resume point: the highest `done_through` recorded.
pub fn done_through(attempts: &[Attempt]) -> u64 {
    attempts.iter().map(|a| a.done_through).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn status(status: u16) -> Answered {
        Answered::Status {
            status,
            retry_after: None,
            excerpt: String::new(),
        }
    }

    #[test]
    fn given_a_2xx_when_answered_then_succeeded() {
        for code in [200, 202, 204, 299] {
            assert_eq!(
                next_step(&status(code), 1, at(), &default_schedule()),
                Step::Succeeded
            );
        }
    }

    #[test]
    fn given_a_410_when_answered_then_the_hook_is_disabled() {
        assert_eq!(
            next_step(&status(410), 1, at(), &default_schedule()),
            Step::Disable
        );
    }

    #[test]
    fn given_a_500_or_a_redirect_or_no_answer_then_the_schedule_says_when_again() {
        let schedule = default_schedule();
        for answered in [
            status(500),
            status(302),
            Answered::Transport("refused".into()),
        ] {
            // Attempt 1 failed: attempt 2 waits schedule[1] = 5 s.
            assert_eq!(
                next_step(&answered, 1, at(), &schedule),
                Step::RetryAt(at() + Duration::seconds(5))
            );
            assert_eq!(
                next_step(&answered, 2, at(), &schedule),
                Step::RetryAt(at() + Duration::minutes(5))
            );
            // The tenth attempt was the last.
            assert_eq!(next_step(&answered, 10, at(), &schedule), Step::Failed);
        }
    }

    #[test]
    fn given_a_429_with_retry_after_then_the_longer_wait_is_kept() {
        let answered = Answered::Status {
            status: 429,
            retry_after: Some(Duration::seconds(60)),
            excerpt: String::new(),
        };
        let schedule = default_schedule();
        assert_eq!(
            next_step(&answered, 1, at(), &schedule),
            Step::RetryAt(at() + Duration::seconds(60))
        );
        // The schedule's 5 min is longer than 60 s: kept.
        assert_eq!(
            next_step(&answered, 2, at(), &schedule),
            Step::RetryAt(at() + Duration::minutes(5))
        );
    }

    #[test]
    fn event_kinds_parse_and_refuse_unknown_words() {
        assert_eq!(
            HookKind::parse_list("release,lock").unwrap(),
            BTreeSet::from([HookKind::Release, HookKind::Lock])
        );
        let e = HookKind::parse_list("release,deploys").unwrap_err();
        assert!(e.contains("\"deploys\""), "{e}");
        assert!("slack".parse::<HookFormat>().is_ok());
        assert!("webhook".parse::<HookFormat>().is_err());
    }

    fn arb_attempt() -> impl Strategy<Value = Attempt> {
        (
            0u8..6,
            1u64..50,
            1u32..12,
            prop_oneof![
                Just(DeliveryState::Pending),
                Just(DeliveryState::Retrying),
                Just(DeliveryState::Succeeded),
                Just(DeliveryState::Failed)
            ],
            proptest::option::of(100u16..600),
            0u64..50,
            proptest::option::of(1u64..50),
        )
            .prop_map(
                |(id, seq, attempt, state, status, done, redelivery)| Attempt {
                    delivery: Uuid::from_u128(id as u128),
                    seq,
                    app: "api".parse().unwrap(),
                    env: None,
                    kind: "release.created".into(),
                    attempt,
                    at: at(),
                    status,
                    error: None,
                    state,
                    next_attempt_at: None,
                    done_through: done,
                    redelivery,
                },
            )
    }

    proptest! {
        /// The journal line codec round-trips.
        #[test]
        fn attempts_round_trip_through_json(attempt in arb_attempt()) {
            let line = serde_json::to_string(&attempt).unwrap();
            prop_assert_eq!(serde_json::from_str::<Attempt>(&line).unwrap(), attempt);
        }

        /// The fold keeps one delivery per id, whose state is its last attempt's, and whose
        /// attempt count is the highest seen.
        #[test]
        fn a_delivery_is_its_last_attempt(attempts in proptest::collection::vec(arb_attempt(), 0..40)) {
            let deliveries = Delivery::fold(&attempts);
            let ids: BTreeSet<Uuid> = attempts.iter().map(|a| a.delivery).collect();
            prop_assert_eq!(deliveries.len(), ids.len());
            for delivery in &deliveries {
                let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.delivery == delivery.id).collect();
                let last = mine.last().unwrap();
                prop_assert_eq!(delivery.state, last.state);
                prop_assert_eq!(delivery.last_status, last.status);
                prop_assert_eq!(delivery.attempts, mine.iter().map(|a| a.attempt).max().unwrap());
            }
            prop_assert!(deliveries.windows(2).all(|w| w[0].seq >= w[1].seq));
        }

        /// A retry is never scheduled before the answer, and never past the schedule's end.
        #[test]
        fn retries_follow_the_schedule(code in 300u16..600, attempt in 1u32..15) {
            let schedule = default_schedule();
            match next_step(&status(code), attempt, at(), &schedule) {
                Step::RetryAt(when) => {
                    prop_assert!(when >= at());
                    prop_assert!((attempt as usize) < schedule.len());
                }
                Step::Failed => prop_assert!(attempt as usize >= schedule.len()),
                Step::Disable => prop_assert_eq!(code, 410),
                Step::Succeeded => prop_assert!(false, "{code} is no success"),
            }
        }
    }
}
