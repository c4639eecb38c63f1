//! Given/when/then tests of issue 16's decisions: pins, `rollback --to last-healthy`, forced and
//! automatic promotion, the policy's settings, and drift recorded once. No I/O: `given` folds
//! events (each recorded by its actor at its time), `when` decides one command.

use chrono::{DateTime, TimeZone, Utc};
use hoist_engine::pipeline::{due_promotions, DuePromotion};
use hoist_engine::{
    decide, AppName, AppState, Build, Command, DomainError, DriftedField, DriftedObject, EnvName,
    Envelope, Event, EventHash, ImageRef, Outcome, PipelinePolicy, PolicyChanges, PromotionSource,
    Recorded, Release, ReleaseKind, ReleaseVersion, Verification,
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

fn image(hex: char) -> ImageRef {
    format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + seconds, 0).unwrap()
}

/// A history: each event with its actor and the second (after a fixed start) it happened at.
struct Given {
    history: Vec<Recorded>,
}

fn given(events: Vec<(&str, i64, Event)>) -> Given {
    let mut given = Given { history: vec![] };
    for (actor, second, event) in events {
        given.push(actor, second, event);
    }
    given
}

impl Given {
    fn push(&mut self, actor: &str, second: i64, event: Event) {
        let n = self.history.len() as u64 + 1;
        self.history.push(Recorded {
            seq: n,
            hash: EventHash([n as u8; 32]),
            envelope: Envelope {
                id: Uuid::from_u128(n.into()),
                app: app(),
                at: at(second),
                actor: actor.parse().unwrap(),
                via: None,
                correlation_id: Uuid::from_u128(1000 + u128::from(n)),
                causation_id: None,
                prev_hash: None,
                event: Some(event),
            },
        });
    }

    fn state(&self) -> AppState {
        AppState::fold(&self.history)
    }

    fn when(&self, command: Command) -> Result<Vec<Event>, DomainError> {
        decide(&app(), &self.state(), &command)
    }

    /// Decides `command` and appends what it made, as `actor` at `second`.
    fn run(&mut self, actor: &str, second: i64, command: Command) -> Vec<Event> {
        let events = self
            .when(command)
            .unwrap_or_else(|e| panic!("the command was rejected: {e}"));
        for event in &events {
            self.push(actor, second, event.clone());
        }
        events
    }
}

fn deployed(env_name: &str, version: u64, hex: char) -> Event {
    let build = Build::of_image(image(hex));
    Event::ReleaseCreated {
        env: env(env_name),
        release: Release {
            version: v(version),
            kind: ReleaseKind::Deploy,
            description: format!("Deploy {}", build.image.short()),
            build: Some(build),
            config: Default::default(),
            source: None,
            rollback_to: None,
        },
    }
}

fn healthy(env_name: &str, version: u64) -> Event {
    Event::RolloutRecorded {
        env: env(env_name),
        version: v(version),
        outcome: Outcome::Healthy,
        detail: String::new(),
    }
}

fn auto_promote_after(env_name: &str, after_secs: u64) -> Event {
    Event::PipelinePolicySet {
        env: env(env_name),
        policy: PipelinePolicy {
            auto_promote: true,
            after_secs,
            ..PipelinePolicy::default()
        },
    }
}

/// staging → production, production auto-promoted 60 s after staging is healthy; staging's v1
/// (image a) went to production as its v1, and production is healthy; then staging's v2
/// (image b) is deployed at 100 s and recorded healthy at 110 s.
fn pipeline_with_a_healthy_staging_v2() -> Given {
    let created = Event::AppCreated {
        envs: vec![env("staging"), env("production")],
    };
    let promoted_v1 = Event::ReleaseCreated {
        env: env("production"),
        release: Release {
            version: v(1),
            kind: ReleaseKind::Promote,
            build: Some(Build::of_image(image('a'))),
            config: Default::default(),
            source: Some(PromotionSource {
                env: env("staging"),
                version: v(1),
            }),
            rollback_to: None,
            description: "Promote staging v1".into(),
        },
    };
    given(vec![
        ("ana@example.com", 0, created),
        ("ana@example.com", 1, auto_promote_after("production", 60)),
        ("ana@example.com", 2, deployed("staging", 1, 'a')),
        ("hoist", 3, healthy("staging", 1)),
        ("ana@example.com", 4, promoted_v1),
        ("hoist", 5, healthy("production", 1)),
        ("ana@example.com", 100, deployed("staging", 2, 'b')),
        ("hoist", 110, healthy("staging", 2)),
    ])
}

fn auto_promote(version: u64, second: i64) -> Command {
    verified_promotion(version, second, None)
}

fn verified_promotion(version: u64, second: i64, verification: Option<Verification>) -> Command {
    Command::AutoPromote {
        from: env("staging"),
        to: env("production"),
        version: v(version),
        at: at(second),
        verification,
    }
}

// ---- auto-promotion ----------------------------------------------------------------------------

#[test]
fn a_healthy_release_is_due_after_the_span_and_promoted_then_caused_by_its_outcome() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    let due = due_promotions(&given.state());
    assert_eq!(
        due,
        vec![DuePromotion {
            from: env("staging"),
            to: env("production"),
            version: v(2),
            due_at: at(170),
            cause: Some(Uuid::from_u128(8)),
            verify: None,
        }]
    );
    let early = given.when(auto_promote(2, 169)).unwrap_err();
    assert!(
        early.to_string().contains("not for the span yet"),
        "{early}"
    );
    let events = given.run("hoist", 170, auto_promote(2, 170));
    let [Event::ReleaseCreated { env: to, release }] = &events[..] else {
        panic!("one release: {events:?}")
    };
    assert_eq!(to, &env("production"));
    assert_eq!(release.kind, ReleaseKind::Promote);
    assert_eq!(release.build, Some(Build::of_image(image('b'))));
    assert_eq!(
        release.source,
        Some(PromotionSource {
            env: env("staging"),
            version: v(2)
        })
    );
    assert_eq!(
        due_promotions(&given.state()),
        vec![],
        "promoted: nothing due"
    );
}

#[test]
fn two_healthy_outcomes_make_one_promotion() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.run("hoist", 170, auto_promote(2, 170));
    // A second serve instance decided on the same healthy outcome: it finds it done.
    assert_eq!(given.when(auto_promote(2, 171)), Ok(vec![]));
    // The same release recorded healthy again (a resync after a restart) is nothing new either.
    given.push("hoist", 200, healthy("staging", 2));
    assert_eq!(due_promotions(&given.state()), vec![]);
    assert_eq!(given.when(auto_promote(2, 300)), Ok(vec![]));
}

#[test]
fn a_rollback_pins_production_and_no_new_healthy_staging_release_is_promoted_until_unpin() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.run("hoist", 170, auto_promote(2, 170));
    // v2 misbehaves in production: bob rolls back to v1, which pins production.
    let events = given.run(
        "bob@example.com",
        180,
        Command::Rollback {
            env: env("production"),
            to: None,
        },
    );
    assert_eq!(
        events[1],
        Event::EnvPinned {
            env: env("production"),
            reason: String::new(),
            rollback_to: Some(v(1)),
        }
    );
    let pin = given.state().envs[&env("production")].pin.clone().unwrap();
    assert_eq!(pin.reason_text(), "rolled back by bob@example.com to v1");
    // A fix reaches staging and is healthy: production stays where bob put it.
    given.push("ana@example.com", 200, deployed("staging", 3, 'c'));
    given.push("hoist", 210, healthy("staging", 3));
    assert_eq!(due_promotions(&given.state()), vec![]);
    let refused = given.when(auto_promote(3, 1000)).unwrap_err();
    assert!(
        matches!(&refused, DomainError::Pinned { reason, .. } if reason == "rolled back by bob@example.com to v1"),
        "{refused:?}"
    );
    // Unpinned, the fix goes on after its span.
    given.run(
        "bob@example.com",
        300,
        Command::Unpin {
            env: env("production"),
        },
    );
    let due = due_promotions(&given.state());
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].version, due[0].due_at), (v(3), at(270)));
    let events = given.run("hoist", 301, auto_promote(3, 301));
    assert!(
        matches!(&events[..], [Event::ReleaseCreated { release, .. }]
        if release.version == v(4) && release.build == Some(Build::of_image(image('c'))))
    );
    // And the release bob rolled away from is never promoted again.
    assert_eq!(given.when(auto_promote(2, 400)), Ok(vec![]));
}

#[test]
fn a_lock_beats_auto_promotion() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.push(
        "carol@example.com",
        120,
        Event::EnvLocked {
            env: env("production"),
            reason: "freeze".into(),
        },
    );
    assert_eq!(due_promotions(&given.state()), vec![]);
    let refused = given.when(auto_promote(2, 1000)).unwrap_err();
    assert!(
        matches!(&refused, DomainError::Locked { by, reason, .. } if by == "carol@example.com" && reason == "freeze"),
        "{refused:?}"
    );
}

#[test]
fn auto_promotion_off_or_not_healthy_promotes_nothing() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.push("ana@example.com", 120, deployed("staging", 3, 'c'));
    assert_eq!(
        due_promotions(&given.state()),
        vec![],
        "v3 is not healthy yet"
    );
    given.push(
        "hoist",
        121,
        Event::RolloutRecorded {
            env: env("staging"),
            version: v(3),
            outcome: Outcome::Failed,
            detail: "crash".into(),
        },
    );
    assert_eq!(due_promotions(&given.state()), vec![], "a failed release");
    let mut off = pipeline_with_a_healthy_staging_v2();
    off.run(
        "ana@example.com",
        111,
        Command::SetPolicies {
            env: env("production"),
            changes: PolicyChanges {
                auto_promote: Some(false),
                ..PolicyChanges::default()
            },
        },
    );
    assert_eq!(due_promotions(&off.state()), vec![]);
    assert!(off
        .when(auto_promote(2, 1000))
        .unwrap_err()
        .to_string()
        .contains("auto-promotion into production is off"));
}

#[test]
fn a_verification_is_recorded_and_a_failed_one_is_final() {
    let verify = PolicyChanges {
        verify: Some(Some("./smoke-test".into())),
        ..PolicyChanges::default()
    };
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.run(
        "ana@example.com",
        111,
        Command::SetPolicies {
            env: env("production"),
            changes: verify,
        },
    );
    assert_eq!(
        due_promotions(&given.state())[0].verify.as_deref(),
        Some("./smoke-test")
    );
    assert!(given.when(auto_promote(2, 200)).is_err(), "not verified");
    let failed = verified_promotion(
        2,
        200,
        Some(Verification {
            passed: false,
            detail: "smoke test: 500".into(),
        }),
    );
    let events = given.run("hoist", 200, failed);
    assert_eq!(
        events,
        vec![Event::PromotionVerified {
            env: env("production"),
            from: env("staging"),
            version: v(2),
            passed: false,
            detail: "smoke test: 500".into(),
        }]
    );
    assert_eq!(due_promotions(&given.state()), vec![], "never tried again");
    let passed = verified_promotion(
        2,
        300,
        Some(Verification {
            passed: true,
            detail: String::new(),
        }),
    );
    assert_eq!(given.when(passed), Ok(vec![]), "decided already");
}

// ---- pins and promotion ------------------------------------------------------------------------

#[test]
fn a_pinned_env_refuses_a_promotion_naming_the_pin_unless_forced() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.run(
        "bob@example.com",
        150,
        Command::Pin {
            env: env("production"),
            reason: Some("incident 42".into()),
        },
    );
    let promote = Command::Promote {
        from: env("staging"),
        to: None,
    };
    let refused = given.when(promote).unwrap_err().to_string();
    assert_eq!(
        refused,
        "api/production is pinned by bob@example.com since 2026-09-21T14:15:50Z: incident 42 (`hoist unpin` to release it, or `promote --force`)"
    );
    let forced = given.run(
        "ana@example.com",
        160,
        Command::PromoteForced {
            from: env("staging"),
            to: None,
        },
    );
    let [Event::ReleaseCreated { release, .. }] = &forced[..] else {
        panic!("{forced:?}")
    };
    assert!(
        release
            .description
            .ends_with(", forced past the pin (incident 42)"),
        "{}",
        release.description
    );
    assert!(
        given.state().envs[&env("production")].pin.is_some(),
        "still pinned"
    );
}

#[test]
fn pin_and_unpin_keep_their_turns() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    let unpin = || Command::Unpin {
        env: env("production"),
    };
    assert_eq!(
        given.when(unpin()),
        Err(DomainError::NotPinned {
            app: app(),
            env: env("production")
        })
    );
    given.run(
        "bob@example.com",
        150,
        Command::Pin {
            env: env("production"),
            reason: None,
        },
    );
    let again = given
        .when(Command::Pin {
            env: env("production"),
            reason: Some("x".into()),
        })
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        "api/production is already pinned by bob@example.com: pinned by bob@example.com (`hoist unpin` first)"
    );
    assert_eq!(
        given.when(Command::Pin {
            env: env("qa"),
            reason: None
        }),
        Err(DomainError::UnknownEnv {
            app: app(),
            env: env("qa"),
            pipeline: "staging, production".into()
        })
    );
    assert_eq!(
        given.run("bob@example.com", 151, unpin()),
        vec![Event::EnvUnpinned {
            env: env("production")
        }]
    );
}

// ---- rollback --to last-healthy ----------------------------------------------------------------

#[test]
fn rollback_to_last_healthy_goes_to_the_last_release_recorded_healthy() {
    let mut history = pipeline_with_a_healthy_staging_v2();
    history.push("ana@example.com", 120, deployed("staging", 3, 'c'));
    history.push(
        "hoist",
        121,
        Event::RolloutRecorded {
            env: env("staging"),
            version: v(3),
            outcome: Outcome::Failed,
            detail: "crash".into(),
        },
    );
    let events = history.run(
        "ana@example.com",
        130,
        Command::RollbackToLastHealthy {
            env: env("staging"),
        },
    );
    assert!(matches!(&events[0], Event::ReleaseCreated { release, .. }
        if release.rollback_to == Some(v(2)) && release.build == Some(Build::of_image(image('b')))));
    assert!(matches!(&events[1], Event::EnvPinned { rollback_to: Some(to), .. } if *to == v(2)));
    // The last healthy release is the current one: nothing to go to.
    let current = history.when(Command::RollbackToLastHealthy {
        env: env("production"),
    });
    assert_eq!(
        current.unwrap_err().to_string(),
        "api/production: nothing to roll back to: v1 is already the current release"
    );
    // Nothing recorded healthy: nothing to go to.
    let fresh = given(vec![
        (
            "ana@example.com",
            0,
            Event::AppCreated {
                envs: vec![env("staging")],
            },
        ),
        ("ana@example.com", 1, deployed("staging", 1, 'a')),
        ("ana@example.com", 2, deployed("staging", 2, 'b')),
    ]);
    assert_eq!(
        fresh
            .when(Command::RollbackToLastHealthy {
                env: env("staging")
            })
            .unwrap_err()
            .to_string(),
        "api/staging: nothing to roll back to: no release of it was recorded healthy"
    );
}

// ---- policy ------------------------------------------------------------------------------------

#[test]
fn a_policy_change_keeps_the_settings_it_does_not_name() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    let set = |changes| Command::SetPolicies {
        env: env("production"),
        changes,
    };
    let events = given.run(
        "ana@example.com",
        200,
        set(PolicyChanges {
            self_heal: Some(true),
            auto_rollback: Some(true),
            ..PolicyChanges::default()
        }),
    );
    assert_eq!(
        events,
        vec![
            Event::PolicySet {
                env: env("production"),
                auto_rollback: true
            },
            Event::PipelinePolicySet {
                env: env("production"),
                policy: PipelinePolicy {
                    auto_promote: true,
                    after_secs: 60,
                    verify: None,
                    self_heal: true,
                },
            },
        ]
    );
    assert_eq!(
        given.when(set(PolicyChanges {
            self_heal: Some(true),
            ..PolicyChanges::default()
        })),
        Ok(vec![]),
        "nothing changes"
    );
    let none = given.when(set(PolicyChanges::default())).unwrap_err();
    assert!(none.to_string().contains("name at least one of"), "{none}");
    let first = given
        .when(Command::SetPolicies {
            env: env("staging"),
            changes: PolicyChanges {
                auto_promote: Some(true),
                ..PolicyChanges::default()
            },
        })
        .unwrap_err();
    assert_eq!(
        first.to_string(),
        "api/staging: invalid policy: the first env of the pipeline has no previous env to promote from"
    );
}

// ---- drift -------------------------------------------------------------------------------------

fn drift(got: &str) -> Vec<DriftedObject> {
    vec![DriftedObject {
        kind: "Deployment".into(),
        name: "api".into(),
        fields: vec![DriftedField {
            path: "spec.template.spec.containers[name=api].image".into(),
            want: "\"registry.example/api@sha256:aaa\"".into(),
            got: Some(got.into()),
            by: Some("kubectl-edit".into()),
        }],
    }]
}

#[test]
fn a_drift_is_recorded_once_and_its_healing_once() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    let record = |objects| Command::RecordDrift {
        env: env("production"),
        version: v(1),
        objects,
    };
    assert_eq!(given.when(record(vec![])), Ok(vec![]), "no drift, nothing");
    let events = given.run("hoist", 200, record(drift("\"evil\"")));
    assert_eq!(
        events,
        vec![Event::DriftDetected {
            env: env("production"),
            version: v(1),
            objects: drift("\"evil\"")
        }]
    );
    assert_eq!(given.when(record(drift("\"evil\""))), Ok(vec![]), "once");
    assert_eq!(
        given.when(record(drift("\"worse\""))).unwrap().len(),
        1,
        "a different drift is news"
    );
    let healed = given.run(
        "hoist",
        201,
        Command::RecordHealed {
            env: env("production"),
            version: v(1),
            detail: "re-applied".into(),
        },
    );
    assert_eq!(healed.len(), 1);
    assert!(given.state().envs[&env("production")].drift.is_none());
    assert_eq!(
        given.when(Command::RecordHealed {
            env: env("production"),
            version: v(1),
            detail: "re-applied".into(),
        }),
        Ok(vec![]),
        "nothing left to heal"
    );
    // A drift that goes away by itself is healed too, and the next rollout clears it.
    given.run("hoist", 300, record(drift("\"evil\"")));
    assert!(matches!(
        &given.run("hoist", 301, record(vec![]))[..],
        [Event::DriftHealed { .. }]
    ));
    given.run("hoist", 302, record(drift("\"evil\"")));
    given.push("hoist", 303, healthy("production", 1));
    assert!(given.state().envs[&env("production")].drift.is_none());
}

#[test]
fn a_span_past_what_a_time_holds_means_never_and_never_panics() {
    let mut given = pipeline_with_a_healthy_staging_v2();
    given.push(
        "ana@example.com",
        111,
        auto_promote_after("production", u64::MAX),
    );
    let due = due_promotions(&given.state());
    assert_eq!(due[0].due_at, DateTime::<Utc>::MAX_UTC);
    let refused = given.when(auto_promote(2, 1_000_000)).unwrap_err();
    assert!(
        refused.to_string().contains("not for the span yet"),
        "{refused}"
    );
}
