//! Given/when/then tests of the reconciler's commands: env targets, the auto-rollback policy and
//! rollout outcomes (with auto-rollback). No I/O: `given` folds events, `when` decides one command.

use chrono::{DateTime, TimeZone, Utc};
use hoist_engine::{
    decide, AppName, AppState, Build, Command, Config, DomainError, EnvName, Envelope, Event,
    EventHash, ImageRef, Outcome, Recorded, Release, ReleaseKind, ReleaseVersion, Target,
};
use uuid::Uuid;

fn app() -> AppName {
    "api".parse().unwrap()
}

fn env(name: &str) -> EnvName {
    name.parse().unwrap()
}

fn v(n: u64) -> ReleaseVersion {
    ReleaseVersion::new(n).unwrap()
}

fn at(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + n, 0).unwrap()
}

fn build(hex: char) -> Build {
    let image: ImageRef = format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
        .parse()
        .unwrap();
    Build::of_image(image)
}

fn recorded(n: u64, event: Event) -> Recorded {
    Recorded {
        seq: n,
        hash: EventHash([n as u8; 32]),
        envelope: Envelope {
            id: Uuid::from_u128(n.into()),
            app: app(),
            at: at(n as i64),
            actor: "ana@example.com".parse().unwrap(),
            via: None,
            correlation_id: Uuid::from_u128(1000 + u128::from(n)),
            causation_id: None,
            prev_hash: None,
            event: Some(event),
        },
    }
}

struct Given(AppState);

fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let history: Vec<Recorded> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| recorded(i as u64 + 1, e))
        .collect();
    Given(AppState::fold(&history))
}

impl Given {
    fn when(&self, command: Command) -> Result<Vec<Event>, DomainError> {
        decide(&app(), &self.0, &command)
    }
}

fn created() -> Event {
    Event::AppCreated {
        envs: vec![env("staging"), env("production")],
    }
}

fn deployed(version: u64, hex: char) -> Event {
    let build = build(hex);
    Event::ReleaseCreated {
        env: env("production"),
        release: Release {
            version: v(version),
            kind: ReleaseKind::Deploy,
            description: format!("Deploy {}", build.image.short()),
            build: Some(build),
            config: Config::new(),
            source: None,
            rollback_to: None,
        },
    }
}

fn rollout(version: u64, outcome: Outcome) -> Event {
    Event::RolloutRecorded {
        env: env("production"),
        version: v(version),
        outcome,
        detail: String::new(),
    }
}

fn record(version: u64, outcome: Outcome, detail: &str) -> Command {
    Command::RecordRollout {
        env: env("production"),
        version: v(version),
        outcome,
        detail: detail.into(),
    }
}

fn exec_target() -> Target {
    Target::Exec {
        command: "./deploy.sh".into(),
        pass_env: Default::default(),
    }
}

fn policy_on() -> Event {
    Event::PolicySet {
        env: env("production"),
        auto_rollback: true,
    }
}

fn target_set() -> Event {
    Event::TargetSet {
        env: env("production"),
        target: exec_target(),
    }
}

// ---- targets and policy -----------------------------------------------------------------------

#[test]
fn set_target_records_it_and_setting_it_again_changes_nothing() {
    let command = Command::SetTarget {
        env: env("production"),
        target: exec_target(),
    };
    assert_eq!(
        given([created()]).when(command.clone()),
        Ok(vec![target_set()])
    );
    assert_eq!(given([created(), target_set()]).when(command), Ok(vec![]));
}

#[test]
fn invalid_targets_are_rejected_naming_the_rule() {
    let cases = [
        (
            Target::Kube {
                context: None,
                namespace: "Not_A_Label".into(),
                routing: Default::default(),
            },
            "a namespace must be a DNS label",
        ),
        (
            Target::Kube {
                context: Some(" ".into()),
                namespace: "prod".into(),
                routing: Default::default(),
            },
            "a kube context must not be empty",
        ),
        (
            Target::Manifests {
                dir: "relative/dir".into(),
                routing: Default::default(),
            },
            "a manifests directory must be an absolute path",
        ),
        (
            Target::Exec {
                command: "  ".into(),
                pass_env: Default::default(),
            },
            "an exec command must not be empty",
        ),
    ];
    for (target, rule) in cases {
        assert_eq!(
            given([created()]).when(Command::SetTarget {
                env: env("production"),
                target
            }),
            Err(DomainError::InvalidTarget {
                app: app(),
                env: env("production"),
                rule
            })
        );
    }
}

#[test]
fn target_of_an_unknown_env_is_rejected() {
    let result = given([created()]).when(Command::SetTarget {
        env: env("qa"),
        target: exec_target(),
    });
    assert!(matches!(result, Err(DomainError::UnknownEnv { .. })));
}

#[test]
fn policy_is_recorded_once() {
    let on = Command::SetPolicy {
        env: env("production"),
        auto_rollback: true,
    };
    assert_eq!(given([created()]).when(on.clone()), Ok(vec![policy_on()]));
    assert_eq!(given([created(), policy_on()]).when(on), Ok(vec![]));
}

// ---- rollouts -----------------------------------------------------------------------------------

#[test]
fn a_rollout_outcome_is_recorded_and_the_release_is_no_longer_pending() {
    let g = given([created(), target_set(), deployed(1, 'a')]);
    assert!(g.0.envs[&env("production")].pending().is_some());
    assert_eq!(
        g.when(record(1, Outcome::Applied, "")),
        Ok(vec![rollout(1, Outcome::Applied)])
    );
    let after = given([
        created(),
        target_set(),
        deployed(1, 'a'),
        rollout(1, Outcome::Applied),
    ]);
    assert!(after.0.envs[&env("production")].pending().is_none());
}

#[test]
fn recording_the_same_outcome_again_changes_nothing() {
    // A reconciler killed between applying and recording re-applies and reports again.
    let g = given([
        created(),
        target_set(),
        deployed(1, 'a'),
        rollout(1, Outcome::Healthy),
    ]);
    assert_eq!(g.when(record(1, Outcome::Healthy, "again")), Ok(vec![]));
}

#[test]
fn applied_without_waiting_adds_nothing_to_a_recorded_healthy_rollout() {
    let g = given([
        created(),
        target_set(),
        deployed(1, 'a'),
        rollout(1, Outcome::Healthy),
    ]);
    assert_eq!(g.when(record(1, Outcome::Applied, "")), Ok(vec![]));
    assert_eq!(
        g.when(record(1, Outcome::Failed, "")),
        Ok(vec![rollout(1, Outcome::Failed)])
    );
}

#[test]
fn an_env_without_a_target_has_nothing_pending() {
    let g = given([created(), deployed(1, 'a')]);
    assert!(g.0.envs[&env("production")].pending().is_none());
}

#[test]
fn a_new_target_makes_the_current_release_pending_again() {
    let g = given([
        created(),
        target_set(),
        deployed(1, 'a'),
        rollout(1, Outcome::Healthy),
        Event::TargetSet {
            env: env("production"),
            target: Target::Manifests {
                dir: "/srv".into(),
                routing: Default::default(),
            },
        },
    ]);
    let production = &g.0.envs[&env("production")];
    assert_eq!(production.pending().map(|r| r.release.version), Some(v(1)));
    assert_eq!(production.last_healthy, Some(v(1)));
}

#[test]
fn an_outcome_for_a_missing_version_is_rejected() {
    let result = given([created(), deployed(1, 'a')]).when(record(2, Outcome::Applied, ""));
    assert!(matches!(result, Err(DomainError::UnknownVersion { .. })));
}

// ---- auto-rollback -------------------------------------------------------------------------------

fn healthy_then_failing() -> Vec<Event> {
    vec![
        created(),
        target_set(),
        deployed(1, 'a'),
        rollout(1, Outcome::Healthy),
        deployed(2, 'b'),
    ]
}

fn auto_rollback(version: u64, to: u64, failed: u64) -> Event {
    let build = build('a');
    Event::ReleaseCreated {
        env: env("production"),
        release: Release {
            version: v(version),
            kind: ReleaseKind::Rollback,
            build: Some(build),
            config: Config::new(),
            source: None,
            rollback_to: Some(v(to)),
            description: format!("Auto-rollback to v{to}: v{failed} failed"),
        },
    }
}

#[test]
fn a_failure_with_the_policy_on_rolls_back_to_the_last_healthy_release() {
    let mut history = healthy_then_failing();
    history.insert(2, policy_on());
    assert_eq!(
        given(history).when(record(2, Outcome::Failed, "")),
        Ok(vec![rollout(2, Outcome::Failed), auto_rollback(3, 1, 2)])
    );
}

#[test]
fn a_failure_with_the_policy_off_is_only_recorded() {
    assert_eq!(
        given(healthy_then_failing()).when(record(2, Outcome::Failed, "")),
        Ok(vec![rollout(2, Outcome::Failed)])
    );
}

#[test]
fn a_failure_with_nothing_healthy_before_is_only_recorded() {
    let history = vec![created(), target_set(), policy_on(), deployed(1, 'a')];
    assert_eq!(
        given(history).when(record(1, Outcome::Failed, "")),
        Ok(vec![rollout(1, Outcome::Failed)])
    );
}

#[test]
fn a_failed_auto_rollback_does_not_roll_back_again() {
    let mut history = healthy_then_failing();
    history.insert(2, policy_on());
    history.extend([rollout(2, Outcome::Failed), auto_rollback(3, 1, 2)]);
    assert_eq!(
        given(history).when(record(3, Outcome::Failed, "")),
        Ok(vec![rollout(3, Outcome::Failed)])
    );
}

#[test]
fn a_failure_of_a_superseded_release_does_not_roll_back() {
    // Someone deployed v3 while v2 was rolling out: v2's failure must not undo v3.
    let mut history = healthy_then_failing();
    history.insert(2, policy_on());
    history.push(deployed(3, 'c'));
    assert_eq!(
        given(history).when(record(2, Outcome::Failed, "")),
        Ok(vec![rollout(2, Outcome::Failed)])
    );
}
