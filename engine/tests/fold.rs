//! The fold is a pure function of the history: random valid command sequences, decided and
//! applied one by one, give a history whose replay from scratch, or in any chunking, is the
//! state that was maintained incrementally. Events with a body this version does not know are
//! skipped and counted, never a failure. Every event decided passes `validate::check_event`.

use chrono::{DateTime, TimeZone, Utc};
use hoist_engine::codec::{decode_commit, encode_envelope};
use hoist_engine::validate::check_event;
use hoist_engine::{
    decide, Actor, AppName, AppState, Artifact, Command, ConfigKey, ConfigValue, DriftedField,
    DriftedObject, EnvName, Envelope, Event, ImageRef, Outcome, PolicyChanges, Recorded,
    ReleaseVersion, Target, Verification,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};
use uuid::Uuid;

fn app() -> AppName {
    "api".parse().unwrap()
}

fn at(seq: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + seq as i64, 0).unwrap()
}

/// A protobuf field this version's `Envelope` does not have (a `oneof body` case added later):
/// field 99 (two-byte key), length-delimited, holding a small message.
const FUTURE_BODY: [u8; 5] = [(99 << 3 | 2) as u8 | 0x80, 99 >> 4, 2, 0x08, 0x01];

/// `event` (or, for `None`, a body from a newer hoist) as the log would give it back: encoded,
/// committed at `seq`, decoded, and hashed over the stored bytes.
fn record(seq: u64, actor: &Actor, state: &AppState, event: Option<Event>) -> Recorded {
    let unknown = event.is_none();
    let envelope = Envelope {
        id: Uuid::from_u128(u128::from(seq)),
        app: app(),
        at: at(seq),
        actor: actor.clone(),
        via: None,
        correlation_id: Uuid::from_u128(u128::from(seq) << 64),
        causation_id: None,
        prev_hash: state.last_hash,
        event,
    };
    let mut bytes = encode_envelope(&envelope);
    if unknown {
        bytes.extend_from_slice(&FUTURE_BODY);
    }
    let mut recorded = decode_commit(seq, &hoist_proto::join_commit(&[bytes]))
        .expect("a commit this test wrote decodes");
    assert_eq!(recorded.len(), 1);
    recorded.remove(0)
}

// ---- random command sequences ------------------------------------------------------------------

/// Envs a command may name: the pipeline is drawn from the first three, so some commands name
/// an env the app does not have.
const ENVS: [&str; 4] = ["dev", "staging", "production", "qa"];

#[derive(Debug, Clone)]
enum Step {
    /// A command; the events it is accepted with are appended.
    Command(Command),
    /// An event whose body this version does not know.
    Unknown,
}

fn env() -> impl Strategy<Value = EnvName> {
    prop_oneof![8 => select(&ENVS[..3]), 1 => Just(ENVS[3])].prop_map(|e| e.parse().unwrap())
}

fn image() -> impl Strategy<Value = ImageRef> {
    select(vec!['a', 'b', 'c', 'd']).prop_map(|hex| {
        format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
            .parse()
            .unwrap()
    })
}

fn key() -> impl Strategy<Value = ConfigKey> {
    select(vec!["A", "B", "C"]).prop_map(|k| k.parse().unwrap())
}

fn value() -> impl Strategy<Value = ConfigValue> {
    prop_oneof![
        3 => "[a-z0-9]{0,6}".prop_map(ConfigValue::Plain),
        1 => proptest::collection::vec(any::<u8>(), 28..40).prop_map(ConfigValue::Sealed),
    ]
}

fn pipeline() -> impl Strategy<Value = Vec<EnvName>> {
    subsequence(ENVS[..3].to_vec(), 2..=3)
        .prop_shuffle()
        .prop_map(|envs| envs.iter().map(|e| e.parse().unwrap()).collect())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => pipeline().prop_map(|pipeline| Command::CreateApp { pipeline }),
        2 => (image(), proptest::option::of("[0-9a-f]{7}"), processes(), proptest::option::of(Just("bin/migrate".to_string())))
            .prop_map(|(image, commit, processes, release_command)| Command::RegisterBuild {
                image, commit, note: None, processes, release_command,
            }),
        6 => (env(), image(), any::<bool>()).prop_map(|(env, image, by_build)| Command::Deploy {
            env,
            artifact: if by_build { Artifact::Build(image.build_id()) } else { Artifact::Image(image) },
        }),
        3 => (env(), proptest::collection::btree_map(key(), value(), 1..3))
            .prop_map(|(env, values)| Command::SetConfig { env, values }),
        2 => (env(), proptest::collection::btree_set(key(), 1..3)).prop_map(|(env, keys)| Command::UnsetConfig { env, keys }),
        3 => (env(), proptest::option::of(env())).prop_map(|(from, to)| Command::Promote { from, to }),
        3 => (env(), proptest::option::of(1..6u64))
            .prop_map(|(env, to)| Command::Rollback { env, to: to.and_then(ReleaseVersion::new) }),
        1 => (env(), "[a-z ]{1,8}").prop_map(|(env, reason)| Command::Lock { env, reason }),
        1 => env().prop_map(|env| Command::Unlock { env }),
        1 => (env(), select(vec![
            Target::None,
            Target::Exec { command: "deploy.sh".into(), pass_env: Default::default() },
            Target::Manifests { dir: "/srv/gitops".into(), routing: Default::default() },
        ])).prop_map(|(env, target)| Command::SetTarget { env, target }),
        1 => (env(), any::<bool>()).prop_map(|(env, auto_rollback)| Command::SetPolicy { env, auto_rollback }),
        4 => (env(), 1..6u64, select(vec![Outcome::Applied, Outcome::Healthy, Outcome::Failed]))
            .prop_map(|(env, version, outcome)| Command::RecordRollout {
                env,
                version: ReleaseVersion::new(version).unwrap(),
                outcome,
                detail: String::new(),
            }),
        // issue 16
        1 => (env(), proptest::option::of("[a-z ]{1,8}")).prop_map(|(env, reason)| Command::Pin { env, reason }),
        1 => env().prop_map(|env| Command::Unpin { env }),
        1 => env().prop_map(|env| Command::RollbackToLastHealthy { env }),
        1 => (env(), proptest::option::of(env())).prop_map(|(from, to)| Command::PromoteForced { from, to }),
        2 => (env(), proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()),
              proptest::option::of(0..3u64), proptest::option::of(proptest::option::of(Just("true".to_string()))),
              proptest::option::of(any::<bool>()))
            .prop_map(|(env, auto_rollback, auto_promote, after_secs, verify, self_heal)| Command::SetPolicies {
                env,
                changes: PolicyChanges { auto_rollback, auto_promote, after_secs, verify, self_heal },
            }),
        3 => (env(), env(), 1..6u64, proptest::option::of(any::<bool>()))
            .prop_map(|(from, to, version, verified)| Command::AutoPromote {
                from,
                to,
                version: ReleaseVersion::new(version).unwrap(),
                at: chrono::Utc::now() + chrono::Duration::days(365 * 200),
                verification: verified.map(|passed| Verification { passed, detail: String::new() }),
            }),
        2 => (env(), 1..6u64, any::<bool>())
            .prop_map(|(env, version, drifted)| Command::RecordDrift {
                env,
                version: ReleaseVersion::new(version).unwrap(),
                objects: if drifted {
                    vec![DriftedObject { kind: "Deployment".into(), name: "api".into(), fields: vec![
                        DriftedField { path: "spec.x".into(), want: "1".into(), got: None, by: None },
                    ] }]
                } else {
                    vec![]
                },
            }),
        1 => (env(), 1..6u64).prop_map(|(env, version)| Command::RecordHealed {
            env,
            version: ReleaseVersion::new(version).unwrap(),
            detail: "re-applied".into(),
        }),
        // issue 14
        3 => (env(), proptest::collection::btree_map(process_type(), 0..4u32, 1..3))
            .prop_map(|(env, replicas)| Command::Scale { env, replicas }),
        1 => (env(), host()).prop_map(|(env, host)| Command::AddDomain { env, host }),
        1 => (env(), host()).prop_map(|(env, host)| Command::RemoveDomain { env, host }),
    ]
}

// issue 14
fn process_type() -> impl Strategy<Value = hoist_engine::ProcessType> {
    select(vec!["web", "worker", "clock"]).prop_map(|t| t.parse().unwrap())
}

fn processes() -> impl Strategy<Value = hoist_engine::Processes> {
    prop_oneof![
        2 => Just(hoist_engine::Processes::new()),
        1 => proptest::collection::btree_map(process_type(), Just("bin/run".to_string()), 1..3),
    ]
}

fn host() -> impl Strategy<Value = hoist_engine::Hostname> {
    select(vec!["api.example.com", "*.example.com", "www.example.org"])
        .prop_map(|h| h.parse().unwrap())
}

/// A step, who takes it, and how many commits of other apps come before it in the global log.
fn step() -> impl Strategy<Value = (Step, Actor, u64)> {
    let step = prop_oneof![12 => command().prop_map(Step::Command), 1 => Just(Step::Unknown)];
    let actor = select(vec!["ana@example.com", "bob@example.com"])
        .prop_map(|a| a.parse::<Actor>().unwrap());
    (step, actor, 0..3u64)
}

/// The app's history after creating it with `pipeline` and taking `steps` (rejected commands
/// append nothing), and the state maintained alongside by `apply`.
fn run(pipeline: Vec<EnvName>, steps: &[(Step, Actor, u64)]) -> (Vec<Recorded>, AppState) {
    let creator: Actor = "ana@example.com".parse().unwrap();
    let create = (Step::Command(Command::CreateApp { pipeline }), creator, 0);
    let mut history = Vec::new();
    let mut state = AppState::default();
    let mut seq = 0;
    let reconciler: Actor = "hoist".parse().unwrap();
    for (step, actor, others) in std::iter::once(&create).chain(steps) {
        // Auto-promotions are serve's, recorded as `hoist` (as the invariants below expect).
        let actor = match step {
            Step::Command(Command::AutoPromote { .. }) => &reconciler,
            _ => actor,
        };
        let events = match step {
            Step::Command(command) => match decide(&app(), &state, command) {
                Ok(events) => events.into_iter().map(Some).collect(),
                Err(_) => continue,
            },
            Step::Unknown => vec![None],
        };
        seq += others + 1;
        for event in events {
            // What decide makes, the import's validation accepts (one set of rules).
            if let Some(event) = &event {
                if let Err(e) = check_event(&app(), &state, event) {
                    panic!("decide made {event:?}, which check_event rejects: {e}");
                }
            }
            let recorded = record(seq, actor, &state, event);
            state = state.apply(&recorded);
            history.push(recorded);
        }
    }
    (history, state)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn replay_in_any_chunking_equals_incremental_apply(
        pipeline in pipeline(),
        steps in proptest::collection::vec(step(), 0..80),
        cuts in proptest::collection::vec(any::<Index>(), 0..6),
    ) {
        let (history, incremental) = run(pipeline, &steps);

        prop_assert_eq!(&AppState::fold(&history), &incremental, "replay from scratch");

        let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut.index(history.len() + 1)).collect();
        bounds.extend([0, history.len()]);
        bounds.sort_unstable();
        let mut chunks = bounds.windows(2).map(|w| &history[w[0]..w[1]]);
        let mut chunked = AppState::fold(chunks.next().expect("at least one chunk"));
        for chunk in chunks {
            chunked = chunk.iter().fold(chunked, AppState::apply);
        }
        prop_assert_eq!(&chunked, &incremental, "fold a prefix, then apply the rest (cut at {:?})", bounds);

        // What decide promised, the fold keeps: versions count from v1 without gaps, per env.
        for (env, env_state) in &incremental.envs {
            for (i, record) in env_state.releases.iter().enumerate() {
                prop_assert_eq!(record.release.version.get(), i as u64 + 1, "{} release #{}", env, i + 1);
            }
        }
        // Auto-rollback never loops: an auto-rollback is never followed by another to the same
        // version; and the last healthy version names a release.
        for (env, env_state) in &incremental.envs {
            let auto = |r: &hoist_engine::ReleaseRecord| {
                r.release.description.starts_with("Auto-rollback").then_some(r.release.rollback_to)
            };
            for pair in env_state.releases.windows(2) {
                let (a, b) = (auto(&pair[0]), auto(&pair[1]));
                prop_assert!(a.is_none() || a != b, "{} auto-rollback loop at {}", env, pair[1].release.version);
            }
            if let Some(healthy) = env_state.last_healthy {
                prop_assert!(env_state.release(healthy).is_some(), "last healthy names a release");
            }
        }
        // issue 16: auto-promotion moves a source release into an env at most once, and a
        // drift is recorded once (never twice in a row the same).
        for (env, env_state) in &incremental.envs {
            let mut sources = std::collections::BTreeSet::new();
            for record in &env_state.releases {
                if record.actor.as_str() == "hoist" {
                    let source = record.release.source.clone().map(|s| (s.env, s.version));
                    prop_assert!(sources.insert(source), "{} auto-promoted one release twice", env);
                }
            }
        }
        let mut recorded = std::collections::BTreeMap::new();
        for event in history.iter().filter_map(|r| r.envelope.event.as_ref()) {
            match event {
                Event::DriftDetected { env, version, objects } => {
                    let drift = Some((*version, objects.clone()));
                    prop_assert!(recorded.get(env) != Some(&drift), "{} drift recorded twice", env);
                    recorded.insert(env.clone(), drift);
                }
                Event::DriftHealed { env, .. } | Event::RolloutRecorded { env, .. } | Event::TargetSet { env, .. } => {
                    prop_assert!(
                        !matches!(event, Event::DriftHealed { .. }) || recorded.get(env).is_some_and(Option::is_some),
                        "{} healed without a drift", env
                    );
                    recorded.insert(env.clone(), None);
                }
                _ => {}
            }
        }
        prop_assert_eq!(incremental.event_count, history.len() as u64);
        let unknown = history.iter().filter(|r| r.envelope.event.is_none()).count() as u64;
        prop_assert_eq!(incremental.skipped_unknown, unknown);
        prop_assert_eq!(incremental.last_seq, history.last().map_or(0, |r| r.seq));
    }
}

#[test]
fn an_unknown_body_is_skipped_and_counted_not_a_failure() {
    let ana: Actor = "ana@example.com".parse().unwrap();
    let staging: EnvName = "staging".parse().unwrap();
    let created = Some(Event::AppCreated {
        envs: vec![staging.clone()],
    });
    let deploy = Command::Deploy {
        env: staging.clone(),
        artifact: Artifact::Image(format!("api@sha256:{}", "e".repeat(64)).parse().unwrap()),
    };

    let mut history = Vec::new();
    let mut state = AppState::default();
    for (seq, event) in [(1, created), (2, None)] {
        let recorded = record(seq, &ana, &state, event);
        state = state.apply(&recorded);
        history.push(recorded);
    }
    assert_eq!(
        history[1].envelope.event, None,
        "a body from a newer hoist decodes as unknown"
    );
    // The app goes on after an event it cannot read.
    let event = decide(&app(), &state, &deploy).unwrap().remove(0);
    history.push(record(3, &ana, &state, Some(event)));

    let with_unknown = AppState::fold(&history);
    assert_eq!(with_unknown.skipped_unknown, 1);
    assert_eq!(with_unknown.event_count, 3);
    assert_eq!(with_unknown.last_seq, 3);
    assert_eq!(with_unknown.last_hash, Some(history[2].hash));

    let known: Vec<Recorded> = history
        .iter()
        .filter(|r| r.envelope.event.is_some())
        .cloned()
        .collect();
    let without_unknown = AppState::fold(&known);
    assert_eq!(
        with_unknown,
        AppState {
            skipped_unknown: 1,
            event_count: 3,
            ..without_unknown
        }
    );
    assert_eq!(with_unknown.env(&staging).unwrap().releases.len(), 1);
}

// issue 15: snapshots.
proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The image → build map leaves out images whose build is their own implicit one, yet
    /// `deploy --image` deploys for every image what the whole map of before deployed: the
    /// build registered last for the image, else the first that held it, else the implicit one.
    #[test]
    fn deploying_an_image_takes_the_build_the_whole_image_map_names(
        pipeline in pipeline(),
        steps in proptest::collection::vec(step(), 0..80),
    ) {
        let (history, full) = run(pipeline, &steps);
        let mut whole = std::collections::BTreeMap::new();
        let mut builds = std::collections::BTreeMap::new();
        for event in history.iter().filter_map(|r| r.envelope.event.as_ref()) {
            match event {
                Event::BuildRegistered { build } => {
                    whole.insert(build.image.clone(), build.id.clone());
                    builds.entry(build.id.clone()).or_insert_with(|| build.clone());
                }
                Event::ReleaseCreated { release: hoist_engine::Release { build: Some(build), .. }, .. }
                    if !builds.contains_key(&build.id) => {
                    whole.entry(build.image.clone()).or_insert_with(|| build.id.clone());
                    builds.insert(build.id.clone(), build.clone());
                }
                _ => {}
            }
        }
        for hex in ['a', 'b', 'c', 'd'] {
            let image: ImageRef = format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
                .parse()
                .unwrap();
            let deployed = |id: Option<&hoist_engine::BuildId>| {
                id.and_then(|id| builds.get(id))
                    .cloned()
                    .unwrap_or_else(|| hoist_engine::Build::of_image(image.clone()))
            };
            prop_assert_eq!(deployed(full.image_build(&image).as_ref()), deployed(whole.get(&image)), "{}", image);
        }
    }

    /// A snapshot taken at any cut of a history, plus the events after it, plus the records
    /// `snapshot::needed` names read back, decides any command as the whole history does, and
    /// authorizes it against the same scope.
    #[test]
    fn deciding_from_a_snapshot_and_its_tail_equals_deciding_from_the_whole_history(
        pipeline in pipeline(),
        steps in proptest::collection::vec(step(), 0..80),
        cut in any::<Index>(),
        next in command(),
    ) {
        use hoist_engine::snapshot;
        let (history, full) = run(pipeline, &steps);
        let cut = cut.index(history.len() + 1);
        let prefix = AppState::fold(&history[..cut]);
        let encoded = snapshot::encode(&app(), &prefix);
        let mut restored = snapshot::decode(&app(), &encoded).expect("a snapshot decodes");
        prop_assert_eq!(&restored, &snapshot::trimmed(&prefix), "encoding round-trips");
        for recorded in &history[cut..] {
            restored.apply_mut(recorded);
        }
        for seq in snapshot::needed(&restored, &next) {
            for recorded in history.iter().filter(|r| r.seq == seq) {
                snapshot::hydrate(&mut restored, recorded.clone());
            }
        }
        prop_assert_eq!(decide(&app(), &restored, &next), decide(&app(), &full, &next));
        prop_assert_eq!(
            hoist_engine::authorize::required(&app(), &next, &restored),
            hoist_engine::authorize::required(&app(), &next, &full)
        );
        prop_assert!(snapshot::decode(&"other".parse().unwrap(), &encoded).is_none(), "another app's snapshot");
    }
}
