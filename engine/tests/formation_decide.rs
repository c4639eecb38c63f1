//! Given/when/then tests of `decide` for issue 14's formation: process types of a build, `ps
//! scale` (an event, not a release, kept across rollbacks and promotions) and domains.

use chrono::{DateTime, TimeZone, Utc};
use hoist_engine::{
    decide, AppName, AppState, Artifact, Build, Command, Config, DomainError, EnvName, Envelope,
    Event, EventHash, Hostname, ImageRef, ProcessType, Processes, Recorded, Release, ReleaseKind,
    ReleaseVersion, Scale,
};
use uuid::Uuid;

fn app() -> AppName {
    "api".parse().unwrap()
}

fn env(name: &str) -> EnvName {
    name.parse().unwrap()
}

fn t(name: &str) -> ProcessType {
    name.parse().unwrap()
}

fn host(name: &str) -> Hostname {
    name.parse().unwrap()
}

fn image(hex: char) -> ImageRef {
    format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn at(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + n, 0).unwrap()
}

fn record(n: u64, event: Event) -> Recorded {
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

fn given(events: impl IntoIterator<Item = Event>) -> AppState {
    let history: Vec<Recorded> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| record(i as u64 + 1, e))
        .collect();
    AppState::fold(&history)
}

/// Decides `command` on `state`; on success the events are folded in too.
fn when(state: &AppState, command: Command) -> Result<(Vec<Event>, AppState), DomainError> {
    let events = decide(&app(), state, &command)?;
    let mut next = state.clone();
    for event in &events {
        next.apply_mut(&record(next.last_seq + 1, event.clone()));
    }
    Ok((events, next))
}

fn created() -> Event {
    Event::AppCreated {
        envs: vec![env("staging"), env("production")],
    }
}

fn processes(pairs: &[(&str, &str)]) -> Processes {
    pairs.iter().map(|(k, v)| (t(k), v.to_string())).collect()
}

fn two_process_build() -> Build {
    let processes = processes(&[("web", "bin/server"), ("worker", "bin/jobs")]);
    let release_command = Some("bin/migrate".to_string());
    Build {
        id: Build::id_for(&image('a'), &processes, release_command.as_deref()),
        processes,
        release_command,
        ..Build::of_image(image('a'))
    }
}

fn deployed(version: u64, build: Build) -> Event {
    Event::ReleaseCreated {
        env: env("staging"),
        release: Release {
            version: ReleaseVersion::new(version).unwrap(),
            kind: ReleaseKind::Deploy,
            description: format!("Deploy {}", build.image.short()),
            build: Some(build),
            config: Config::new(),
            source: None,
            rollback_to: None,
        },
    }
}

fn scale(pairs: &[(&str, u32)]) -> Scale {
    pairs.iter().map(|(k, n)| (t(k), *n)).collect()
}

#[test]
fn a_build_with_processes_is_another_build_than_the_bare_image() {
    let state = given([
        created(),
        Event::BuildRegistered {
            build: Build::of_image(image('a')),
        },
    ]);
    let (events, state) = when(
        &state,
        Command::RegisterBuild {
            image: image('a'),
            commit: None,
            note: None,
            processes: two_process_build().processes,
            release_command: Some("bin/migrate".into()),
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![Event::BuildRegistered {
            build: two_process_build()
        }]
    );
    assert_ne!(two_process_build().id, image('a').build_id());
    // `deploy --image` deploys the build registered last for the image: its processes too.
    let (events, _) = when(
        &state,
        Command::Deploy {
            env: env("staging"),
            artifact: Artifact::Image(image('a')),
        },
    )
    .unwrap();
    assert_eq!(events, vec![deployed(1, two_process_build())]);
}

#[test]
fn an_empty_process_command_is_rejected() {
    let state = given([created()]);
    let error = when(
        &state,
        Command::RegisterBuild {
            image: image('a'),
            commit: None,
            note: None,
            processes: processes(&[("web", "  ")]),
            release_command: None,
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the command of process type web: must not be empty"
    );
}

#[test]
fn scale_is_an_event_not_a_release_and_records_only_changes() {
    let state = given([created(), deployed(1, two_process_build())]);
    let (events, state) = when(
        &state,
        Command::Scale {
            env: env("staging"),
            replicas: scale(&[("web", 3), ("worker", 0)]),
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![Event::ScaleSet {
            env: env("staging"),
            replicas: scale(&[("web", 3), ("worker", 0)])
        }]
    );
    let staging = &state.envs[&env("staging")];
    assert_eq!(staging.releases.len(), 1, "no new release");
    let formation = staging.formation(staging.current().unwrap());
    let replicas: Vec<(&str, u32)> = formation
        .processes
        .iter()
        .map(|p| (p.process_type.as_str(), p.replicas))
        .collect();
    assert_eq!(replicas, vec![("web", 3), ("worker", 0)]);
    // The same counts again: nothing to record. One changed: only that one.
    let (events, _) = when(
        &state,
        Command::Scale {
            env: env("staging"),
            replicas: scale(&[("web", 3), ("worker", 2)]),
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![Event::ScaleSet {
            env: env("staging"),
            replicas: scale(&[("worker", 2)])
        }]
    );
}

#[test]
fn scale_survives_a_rollback_and_a_new_deploy() {
    let state = given([
        created(),
        deployed(1, two_process_build()),
        deployed(2, Build::of_image(image('b'))),
        Event::ScaleSet {
            env: env("staging"),
            replicas: scale(&[("web", 4)]),
        },
    ]);
    let (_, state) = when(
        &state,
        Command::Rollback {
            env: env("staging"),
            to: None,
        },
    )
    .unwrap();
    let staging = &state.envs[&env("staging")];
    let formation = staging.formation(staging.current().unwrap());
    assert_eq!(
        formation.processes.len(),
        2,
        "the rollback carries v1's processes"
    );
    assert_eq!(
        formation.processes[0].replicas, 4,
        "and keeps the env's scale"
    );
    assert_eq!(formation.release_command.as_deref(), Some("bin/migrate"));
}

#[test]
fn scaling_a_type_the_current_build_lacks_is_rejected() {
    let state = given([created(), deployed(1, Build::of_image(image('a')))]);
    let error = when(
        &state,
        Command::Scale {
            env: env("staging"),
            replicas: scale(&[("worker", 1)]),
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "api/staging: the current build has no process type worker (it has web)"
    );
    let error = when(
        &state,
        Command::Scale {
            env: env("production"),
            replicas: scale(&[("web", 1)]),
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "api/production has no release yet: deploy a build before scaling it"
    );
    let error = when(
        &state,
        Command::Scale {
            env: env("staging"),
            replicas: scale(&[("web", 10_001)]),
        },
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "web=10001: a count is at most 10000");
}

#[test]
fn domains_are_unique_within_an_app_and_removable() {
    let state = given([created()]);
    let (events, state) = when(
        &state,
        Command::AddDomain {
            env: env("staging"),
            host: host("api.example.com"),
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![Event::DomainAdded {
            env: env("staging"),
            host: host("api.example.com")
        }]
    );
    let again = when(
        &state,
        Command::AddDomain {
            env: env("staging"),
            host: host("api.example.com"),
        },
    )
    .unwrap_err();
    assert_eq!(
        again.to_string(),
        "api/staging: api.example.com is already one of its domains"
    );
    let elsewhere = when(
        &state,
        Command::AddDomain {
            env: env("production"),
            host: host("api.example.com"),
        },
    )
    .unwrap_err();
    assert_eq!(
        elsewhere.to_string(),
        "domain api.example.com is already routed to api/staging: remove it there first"
    );
    let (_, state) = when(
        &state,
        Command::RemoveDomain {
            env: env("staging"),
            host: host("api.example.com"),
        },
    )
    .unwrap();
    assert!(state.envs[&env("staging")].domains.is_empty());
    let gone = when(
        &state,
        Command::RemoveDomain {
            env: env("staging"),
            host: host("api.example.com"),
        },
    )
    .unwrap_err();
    assert_eq!(
        gone.to_string(),
        "api/staging: api.example.com is not one of its domains (see `hoist domains list`)"
    );
}

#[test]
fn a_scale_or_domain_change_makes_the_current_release_pending_again() {
    let state = given([
        created(),
        deployed(1, two_process_build()),
        Event::TargetSet {
            env: env("staging"),
            target: hoist_engine::Target::Exec {
                command: "true".into(),
                pass_env: Default::default(),
            },
        },
        Event::RolloutRecorded {
            env: env("staging"),
            version: ReleaseVersion::new(1).unwrap(),
            outcome: hoist_engine::Outcome::Applied,
            detail: String::new(),
        },
    ]);
    assert!(state.envs[&env("staging")].pending().is_none());
    let (_, state) = when(
        &state,
        Command::Scale {
            env: env("staging"),
            replicas: scale(&[("worker", 2)]),
        },
    )
    .unwrap();
    assert_eq!(
        state.envs[&env("staging")]
            .pending()
            .map(|r| r.release.version.get()),
        Some(1),
        "applied again, under the same version"
    );
}

/// A release whose release phase failed is a failed rollout like any other: with auto-rollback
/// on, the rollback release copies the healthy release's build, release command included, so
/// the release phase runs again for it.
#[test]
fn a_failed_release_phase_auto_rolls_back_to_a_build_with_its_own_release_command() {
    let v1 = two_process_build();
    let broken = Build {
        release_command: Some("bin/migrate --broken".into()),
        id: Build::id_for(&image('b'), &v1.processes, Some("bin/migrate --broken")),
        ..Build {
            image: image('b'),
            ..v1.clone()
        }
    };
    let state = given([
        created(),
        deployed(1, v1.clone()),
        Event::PolicySet {
            env: env("staging"),
            auto_rollback: true,
        },
        Event::RolloutRecorded {
            env: env("staging"),
            version: ReleaseVersion::new(1).unwrap(),
            outcome: hoist_engine::Outcome::Healthy,
            detail: "release phase job api-release-v1 completed".into(),
        },
        deployed(2, broken),
    ]);
    let (events, state) = when(
        &state,
        Command::RecordRollout {
            env: env("staging"),
            version: ReleaseVersion::new(2).unwrap(),
            outcome: hoist_engine::Outcome::Failed,
            detail: "release phase failed: job api-release-v2: BackoffLimitExceeded".into(),
        },
    )
    .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let staging = &state.envs[&env("staging")];
    let rollback = staging.current().unwrap();
    assert_eq!(rollback.release.version.get(), 3);
    assert_eq!(rollback.release.kind, ReleaseKind::Rollback);
    assert_eq!(rollback.release.build.as_ref(), Some(&v1));
    assert_eq!(
        staging.formation(rollback).release_command.as_deref(),
        Some("bin/migrate")
    );
}
