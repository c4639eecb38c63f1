//! Imports are all or nothing and only possible histories get in: an exported history, mutated
//! at random (lines dropped, repeated, swapped; versions, envs, rollback targets, promotion
//! sources, ids and kinds edited, with the hash chain recomputed so that the domain rules are
//! what is tested), is either accepted whole (the store then gives back exactly the input) or
//! rejected at its first impossible line with nothing appended.

use chrono::{TimeZone, Utc};
use hoist_engine::codec::encode_envelope;
use hoist_engine::import::{ImportError, Importer};
use hoist_engine::service::decode_commits;
use hoist_engine::store::EventStore;
use hoist_engine::{
    decide, Actor, AppName, AppState, Artifact, Command, ConfigValue, EnvName, Envelope, Event,
    EventHash, ImageRef, Outcome, Recorded, ReleaseKind, ReleaseVersion, Target,
};
use hoist_stores::file::FileStore;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

fn name<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn image(hex: char) -> ImageRef {
    name(&format!(
        "registry.example/api@sha256:{}",
        hex.to_string().repeat(64)
    ))
}

fn version(v: u64) -> ReleaseVersion {
    ReleaseVersion::new(v).unwrap()
}

/// A history of two apps that touches every kind of event, as `decide` makes it: promotions,
/// rollbacks (one automatic, one on a locked env), locks, targets, policies, rollouts.
fn history() -> Vec<Recorded> {
    let (api, web): (AppName, AppName) = (name("api"), name("web"));
    let (dev, staging, production): (EnvName, EnvName, EnvName) =
        (name("dev"), name("staging"), name("production"));
    let deploy = |env: &EnvName, hex| Command::Deploy {
        env: env.clone(),
        artifact: Artifact::Image(image(hex)),
    };
    let script = vec![
        (
            &api,
            Command::CreateApp {
                pipeline: vec![staging.clone(), production.clone()],
            },
        ),
        (
            &web,
            Command::CreateApp {
                pipeline: vec![dev.clone(), staging.clone(), production.clone()],
            },
        ),
        (
            &api,
            Command::RegisterBuild {
                image: image('a'),
                commit: Some("abc1234".into()),
                note: None,
                processes: Default::default(),
                release_command: None,
            },
        ),
        (
            &api,
            Command::Deploy {
                env: staging.clone(),
                artifact: Artifact::Build(image('a').build_id()),
            },
        ),
        (&web, deploy(&dev, 'd')),
        (
            &api,
            Command::SetConfig {
                env: staging.clone(),
                values: [(name("A"), ConfigValue::Plain("1".into()))].into(),
            },
        ),
        (
            &web,
            Command::Promote {
                from: dev.clone(),
                to: None,
            },
        ),
        (
            &api,
            Command::Promote {
                from: staging.clone(),
                to: None,
            },
        ),
        (
            &api,
            Command::SetTarget {
                env: staging.clone(),
                target: Target::Exec {
                    command: "deploy.sh".into(),
                    pass_env: Default::default(),
                },
            },
        ),
        (
            &api,
            Command::SetPolicy {
                env: staging.clone(),
                auto_rollback: true,
            },
        ),
        (
            &api,
            Command::RecordRollout {
                env: staging.clone(),
                version: version(2),
                outcome: Outcome::Healthy,
                detail: String::new(),
            },
        ),
        (&web, deploy(&dev, 'a')),
        (&api, deploy(&staging, 'b')),
        (
            &api,
            Command::RecordRollout {
                env: staging.clone(),
                version: version(3),
                outcome: Outcome::Failed,
                detail: "crash".into(),
            },
        ),
        (
            &web,
            Command::Rollback {
                env: dev.clone(),
                to: None,
            },
        ),
        (
            &api,
            Command::Lock {
                env: production.clone(),
                reason: "freeze".into(),
            },
        ),
        (&api, deploy(&staging, 'c')),
        (
            &api,
            Command::Rollback {
                env: staging.clone(),
                to: Some(version(1)),
            },
        ),
        (
            &api,
            Command::Unlock {
                env: production.clone(),
            },
        ),
        (&api, deploy(&production, 'c')),
        (
            &api,
            Command::Lock {
                env: production.clone(),
                reason: "incident".into(),
            },
        ),
        (
            &api,
            Command::Rollback {
                env: production.clone(),
                to: Some(version(1)),
            },
        ),
    ];
    let actor: Actor = name("ana@example.com");
    let mut states: HashMap<AppName, AppState> = HashMap::new();
    let mut history = Vec::new();
    for (seq, (app, command)) in (1..).zip(script) {
        let state = states.entry(app.clone()).or_default();
        let events = decide(app, state, &command).expect("the script is valid");
        assert!(
            !events.is_empty(),
            "every step of the script records something"
        );
        for event in events {
            let envelope = Envelope {
                id: Uuid::from_u128(history.len() as u128 + 1),
                app: app.clone(),
                at: Utc.timestamp_opt(1_790_000_000 + seq as i64, 0).unwrap(),
                actor: actor.clone(),
                via: None,
                correlation_id: Uuid::from_u128(u128::from(seq) << 64),
                causation_id: None,
                prev_hash: state.last_hash,
                event: Some(event),
            };
            let recorded = Recorded {
                seq,
                hash: EventHash::of(&encode_envelope(&envelope)),
                envelope,
            };
            state.apply_mut(&recorded);
            history.push(recorded);
        }
    }
    history
}

/// Recomputes every app's hash chain over `lines` in their order.
fn rechain(lines: &mut [Recorded]) {
    let mut heads: HashMap<AppName, EventHash> = HashMap::new();
    for line in lines {
        line.envelope.prev_hash = heads.get(&line.envelope.app).copied();
        line.hash = EventHash::of(&encode_envelope(&line.envelope));
        heads.insert(line.envelope.app.clone(), line.hash);
    }
}

fn check(lines: &[Recorded]) -> Result<Importer, ImportError> {
    let mut importer = Importer::default();
    for (i, line) in lines.iter().enumerate() {
        importer.push(i + 1, line.clone())?;
    }
    Ok(importer)
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop(Index),
    Repeat(Index, Index),
    Swap(Index, Index),
    Version(Index, u64),
    Env(Index, &'static str),
    RollbackTo(Index, u64),
    SourceVersion(Index, u64),
    Kind(Index, ReleaseKind),
    SecondCreate(Index),
    SameId(Index, Index),
    Seq(Index, u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<Index>;
    prop_oneof![
        (i()).prop_map(Mutation::Drop),
        (i(), i()).prop_map(|(a, b)| Mutation::Repeat(a, b)),
        (i(), i()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (i(), 1..6u64).prop_map(|(a, v)| Mutation::Version(a, v)),
        (i(), select(vec!["dev", "staging", "production", "qa"]))
            .prop_map(|(a, e)| Mutation::Env(a, e)),
        (i(), 1..6u64).prop_map(|(a, v)| Mutation::RollbackTo(a, v)),
        (i(), 1..6u64).prop_map(|(a, v)| Mutation::SourceVersion(a, v)),
        (
            i(),
            select(vec![
                ReleaseKind::Deploy,
                ReleaseKind::Config,
                ReleaseKind::Promote,
                ReleaseKind::Rollback
            ])
        )
            .prop_map(|(a, k)| Mutation::Kind(a, k)),
        (i()).prop_map(Mutation::SecondCreate),
        (i(), i()).prop_map(|(a, b)| Mutation::SameId(a, b)),
        (i(), 0..40u64).prop_map(|(a, s)| Mutation::Seq(a, s)),
    ]
}

fn mutate(lines: &mut Vec<Recorded>, mutation: &Mutation) {
    if lines.is_empty() {
        return;
    }
    let at = |i: &Index| i.index(lines.len());
    match mutation {
        Mutation::Drop(i) => {
            lines.remove(at(i));
        }
        Mutation::Repeat(i, j) => {
            let copy = lines[at(i)].clone();
            let to = at(j);
            lines.insert(to, copy);
        }
        Mutation::Swap(i, j) => {
            let (a, b) = (at(i), at(j));
            lines.swap(a, b);
        }
        Mutation::SameId(i, j) => {
            let id = lines[at(j)].envelope.id;
            let a = at(i);
            lines[a].envelope.id = id;
        }
        Mutation::Seq(i, seq) => {
            let a = at(i);
            lines[a].seq = *seq;
        }
        Mutation::SecondCreate(i) => {
            let a = at(i);
            lines[a].envelope.event = Some(Event::AppCreated {
                envs: vec![name("staging")],
            });
        }
        edit => {
            let a = at(match edit {
                Mutation::Version(i, _)
                | Mutation::Env(i, _)
                | Mutation::RollbackTo(i, _)
                | Mutation::SourceVersion(i, _)
                | Mutation::Kind(i, _) => i,
                _ => unreachable!("handled above"),
            });
            let Some(event) = &mut lines[a].envelope.event else {
                return;
            };
            match (edit, event) {
                (Mutation::Version(_, v), Event::ReleaseCreated { release, .. }) => {
                    release.version = version(*v)
                }
                (Mutation::Version(_, v), Event::RolloutRecorded { version: rv, .. }) => {
                    *rv = version(*v)
                }
                (
                    Mutation::Env(_, e),
                    Event::ReleaseCreated { env, .. }
                    | Event::EnvLocked { env, .. }
                    | Event::EnvUnlocked { env }
                    | Event::TargetSet { env, .. }
                    | Event::PolicySet { env, .. }
                    | Event::RolloutRecorded { env, .. },
                ) => *env = name(e),
                (Mutation::RollbackTo(_, v), Event::ReleaseCreated { release, .. }) => {
                    release.rollback_to = Some(version(*v))
                }
                (Mutation::SourceVersion(_, v), Event::ReleaseCreated { release, .. }) => {
                    if let Some(source) = &mut release.source {
                        source.version = version(*v)
                    }
                }
                (Mutation::Kind(_, k), Event::ReleaseCreated { release, .. }) => release.kind = *k,
                _ => {}
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn release(event: &mut Event) -> &mut hoist_engine::Release {
    match event {
        Event::ReleaseCreated { release, .. } => release,
        other => panic!("not a release: {other:?}"),
    }
}

/// Whether two event sequences share their commit boundaries (same log seq, same commit).
fn boundaries(lines: &[Recorded]) -> Vec<bool> {
    lines.windows(2).map(|w| w[0].seq == w[1].seq).collect()
}

#[test]
fn an_unmutated_export_is_accepted_and_given_back_whole() {
    let lines = history();
    let checked = check(&lines)
        .expect("a history decide made is possible")
        .finish();
    assert_eq!(checked.events, lines.len());
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), Duration::from_secs(5)).unwrap();
    runtime().block_on(async {
        checked.append(&store).await.unwrap();
        let stored = decode_commits(&store.read_from(1, usize::MAX).await.unwrap()).unwrap();
        assert_eq!(
            stored, lines,
            "the store gives back the export, seqs included"
        );
    });
}

#[test]
fn impossible_histories_are_rejected_at_their_first_impossible_line() {
    let lines = history();
    let find = |pred: &dyn Fn(&Event) -> bool| {
        lines
            .iter()
            .position(|l| l.envelope.event.as_ref().is_some_and(pred))
            .expect("the history has such an event")
    };
    let rollback = find(
        &|e| matches!(e, Event::ReleaseCreated { release, .. } if release.kind == ReleaseKind::Rollback),
    );
    let promote = find(
        &|e| matches!(e, Event::ReleaseCreated { release, .. } if release.kind == ReleaseKind::Promote),
    );
    let deploy = find(
        &|e| matches!(e, Event::ReleaseCreated { release, .. } if release.kind == ReleaseKind::Deploy),
    );
    let config = find(
        &|e| matches!(e, Event::ReleaseCreated { release, .. } if release.kind == ReleaseKind::Config),
    );
    let lock = find(&|e| matches!(e, Event::EnvLocked { .. }));
    let build = find(&|e| matches!(e, Event::BuildRegistered { .. }));
    let unlock = find(&|e| matches!(e, Event::EnvUnlocked { .. }));
    let edit = |i: usize, change: &dyn Fn(&mut Event)| {
        let mut lines = lines.clone();
        change(lines[i].envelope.event.as_mut().unwrap());
        rechain(&mut lines);
        lines
    };
    let cases: Vec<(Vec<Recorded>, usize, &str)> = vec![
        (
            edit(rollback, &|e| release(e).rollback_to = Some(version(9))),
            rollback,
            "has no release v9",
        ),
        (
            edit(deploy, &|e| release(e).version = version(5)),
            deploy,
            "release v5 is out of order: the next release is v1",
        ),
        (
            edit(promote, &|e| {
                release(e).source.as_mut().unwrap().version = version(7)
            }),
            promote,
            "has no release v7",
        ),
        (
            edit(deploy, &|e| {
                if let Event::ReleaseCreated { env, .. } = e {
                    *env = name("qa")
                }
            }),
            deploy,
            "env qa is not in the pipeline",
        ),
        (
            edit(deploy, &|e| {
                *e = Event::AppCreated {
                    envs: vec![name("staging")],
                }
            }),
            deploy,
            "already exists",
        ),
        (
            edit(unlock, &|e| {
                *e = Event::EnvLocked {
                    env: name("production"),
                    reason: "again".into(),
                }
            }),
            unlock,
            "is locked by",
        ),
        (
            edit(lock, &|e| {
                *e = Event::EnvUnlocked {
                    env: name("production"),
                }
            }),
            lock,
            "is not locked",
        ),
        (
            edit(0, &|e| {
                *e = Event::PolicySet {
                    env: name("staging"),
                    auto_rollback: true,
                }
            }),
            0,
            "before its app_created",
        ),
        // The size limits `decide` keeps on input hold for imported events too.
        (
            edit(lock, &|e| {
                if let Event::EnvLocked { reason, .. } = e {
                    *reason = "r".repeat(1 << 20)
                }
            }),
            lock,
            "lock reason is 1048576 bytes: the limit is 1024 bytes",
        ),
        (
            edit(build, &|e| {
                if let Event::BuildRegistered { build } = e {
                    build.note = Some("n".repeat(1025))
                }
            }),
            build,
            "--note is 1025 bytes",
        ),
        (
            edit(config, &|e| {
                release(e)
                    .config
                    .insert(name("CERT"), ConfigValue::Plain("c".repeat(32 * 1024 + 1)));
            }),
            config,
            "config value of CERT is 32769 bytes",
        ),
        (
            edit(deploy, &|e| {
                release(e)
                    .config
                    .insert(name("CERT"), ConfigValue::Plain("c".into()));
            }),
            deploy,
            "its config is not the one it copies",
        ),
    ];
    for (mutated, at, rule) in cases {
        let error = check(&mutated)
            .err()
            .unwrap_or_else(|| panic!("line {} ({rule}) is accepted", at + 1));
        assert_eq!(error.line, at + 1, "{error}");
        assert!(error.to_string().contains(rule), "{error} names {rule:?}");
    }

    // The same event id twice, even in another app and rechained, names both lines.
    let mut repeated = lines.clone();
    let last = repeated.len() - 1;
    repeated[last].envelope.id = repeated[1].envelope.id;
    rechain(&mut repeated);
    let error = check(&repeated).expect_err("a repeated id is rejected");
    assert_eq!(error.line, last + 1);
    assert!(error.to_string().contains("first on line 2"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_export_is_taken_whole_or_not_at_all(
        mutations in proptest::collection::vec(mutation(), 1..4),
        rehash in any::<bool>(),
    ) {
        let mut lines = history();
        for m in &mutations {
            mutate(&mut lines, m);
        }
        if rehash {
            rechain(&mut lines);
        }
        match check(&lines) {
            Err(error) => {
                // Rejected at the FIRST impossible line: everything before it is acceptable.
                prop_assert!(error.line >= 1 && error.line <= lines.len(), "{}", error);
                prop_assert!(check(&lines[..error.line - 1]).is_ok(), "{} is not the first", error);
            }
            Ok(importer) => {
                let checked = importer.finish();
                let dir = tempfile::tempdir().unwrap();
                let store = FileStore::open(dir.path(), Duration::from_secs(5)).unwrap();
                let stored = runtime().block_on(async {
                    checked.append(&store).await.unwrap();
                    decode_commits(&store.read_from(1, usize::MAX).await.unwrap()).unwrap()
                });
                let envelopes = |l: &[Recorded]| l.iter().map(|r| (r.hash, r.envelope.clone())).collect::<Vec<_>>();
                prop_assert_eq!(envelopes(&stored), envelopes(&lines), "the store gives back the input");
                prop_assert_eq!(boundaries(&stored), boundaries(&lines), "in the same commits");
                // What the fold assumes holds for every app taken in.
                for app in &checked.apps {
                    let state = AppState::fold(stored.iter().filter(|r| r.envelope.app == *app));
                    for (env, env_state) in &state.envs {
                        prop_assert!(state.pipeline.contains(env), "{} is in {}'s pipeline", env, app);
                        for (i, record) in env_state.releases.iter().enumerate() {
                            prop_assert_eq!(record.release.version.get(), i as u64 + 1);
                            if let Some(to) = record.release.rollback_to {
                                prop_assert!(to.get() <= i as u64, "{} rolls back to an earlier release", record.release.version);
                            }
                        }
                    }
                }
            }
        }
    }
}
