//! Given/when/then tests of `decide`, one or more per command, with no I/O: `given` folds events
//! into an app's state, `when` runs one command against it, `then_expect` / `then_reject` say
//! what it must produce.

use chrono::{DateTime, TimeZone, Utc};
use hoist_engine::{
    decide, AppName, AppState, Artifact, Build, Command, Config, ConfigKey, ConfigValue,
    DomainError, EnvName, Envelope, Event, EventHash, ImageRef, PromotionSource, Recorded, Release,
    ReleaseKind, ReleaseVersion,
};
use uuid::Uuid;

const ACTOR: &str = "ana@example.com";

fn app() -> AppName {
    "api".parse().unwrap()
}

fn env(name: &str) -> EnvName {
    name.parse().unwrap()
}

fn key(name: &str) -> ConfigKey {
    name.parse().unwrap()
}

fn v(n: u64) -> ReleaseVersion {
    ReleaseVersion::new(n).unwrap()
}

/// An image whose digest is `hex` repeated.
fn image(hex: char) -> ImageRef {
    format!("registry.example/api@sha256:{}", hex.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn config(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, value)| (key(k), ConfigValue::Plain((*value).to_owned())))
        .collect()
}

fn at(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + n, 0).unwrap()
}

// ---- the harness -------------------------------------------------------------------------------

/// An app whose history is `events`, each recorded by `ACTOR`.
fn given(events: impl IntoIterator<Item = Event>) -> Given {
    given_by(events.into_iter().map(|event| (ACTOR, event)))
}

/// An app whose history is `events`, each recorded by the actor beside it.
fn given_by<'a>(events: impl IntoIterator<Item = (&'a str, Event)>) -> Given {
    let history: Vec<Recorded> = events
        .into_iter()
        .enumerate()
        .map(|(i, (actor, event))| {
            let n = i as u64 + 1;
            Recorded {
                seq: n,
                hash: EventHash([n as u8; 32]),
                envelope: Envelope {
                    id: Uuid::from_u128(n.into()),
                    app: app(),
                    at: at(n as i64),
                    actor: actor.parse().unwrap(),
                    via: None,
                    correlation_id: Uuid::from_u128(1000 + u128::from(n)),
                    causation_id: None,
                    prev_hash: (n > 1).then(|| EventHash([n as u8 - 1; 32])),
                    event: Some(event),
                },
            }
        })
        .collect();
    Given { history }
}

struct Given {
    history: Vec<Recorded>,
}

impl Given {
    fn when(self, command: Command) -> When {
        let state = AppState::fold(&self.history);
        let result = decide(&app(), &state, &command);
        When { state, result }
    }
}

struct When {
    state: AppState,
    result: Result<Vec<Event>, DomainError>,
}

impl When {
    /// Asserts the command produced exactly `expected`; returns the state after them.
    fn then_expect(self, expected: Vec<Event>) -> AppState {
        let events = self
            .result
            .unwrap_or_else(|e| panic!("expected events, the command was rejected: {e}"));
        assert_eq!(events, expected);
        let next_seq = self.state.last_seq + 1;
        events.into_iter().fold(self.state, |state, event| {
            state.apply(&Recorded {
                seq: next_seq,
                hash: EventHash([0xee; 32]),
                envelope: Envelope {
                    id: Uuid::from_u128(u128::from(next_seq)),
                    app: app(),
                    at: at(next_seq as i64),
                    actor: ACTOR.parse().unwrap(),
                    via: None,
                    correlation_id: Uuid::nil(),
                    causation_id: None,
                    prev_hash: None,
                    event: Some(event),
                },
            })
        })
    }

    /// Asserts the command was rejected with `expected`; returns the error's message.
    fn then_reject(self, expected: DomainError) -> String {
        match self.result {
            Ok(events) => panic!("expected {expected:?}, the command was accepted with {events:?}"),
            Err(error) => {
                assert_eq!(error, expected);
                error.to_string()
            }
        }
    }
}

// ---- event builders ----------------------------------------------------------------------------

fn created(envs: &[&str]) -> Event {
    Event::AppCreated {
        envs: envs.iter().map(|e| env(e)).collect(),
    }
}

fn registered(build: Build) -> Event {
    Event::BuildRegistered { build }
}

fn released(env_name: &str, release: Release) -> Event {
    Event::ReleaseCreated {
        env: env(env_name),
        release,
    }
}

/// The pin a rollback to `to` puts on its env (issue 16).
fn pinned_by_rollback(env_name: &str, to: u64) -> Event {
    Event::EnvPinned {
        env: env(env_name),
        reason: String::new(),
        rollback_to: Some(v(to)),
    }
}

fn locked(env_name: &str, reason: &str) -> Event {
    Event::EnvLocked {
        env: env(env_name),
        reason: reason.into(),
    }
}

/// A release with no source and no rollback target.
fn release(
    version: u64,
    kind: ReleaseKind,
    build: Option<Build>,
    config: Config,
    description: &str,
) -> Release {
    Release {
        version: v(version),
        kind,
        build,
        config,
        source: None,
        rollback_to: None,
        description: description.into(),
    }
}

fn deploy(version: u64, hex: char, config: Config) -> Release {
    deploy_of(version, Build::of_image(image(hex)), config)
}

fn deploy_of(version: u64, build: Build, config: Config) -> Release {
    let description = format!("Deploy {}", build.image.short());
    release(
        version,
        ReleaseKind::Deploy,
        Some(build),
        config,
        &description,
    )
}

fn config_release(
    version: u64,
    build: Option<Build>,
    config: Config,
    description: &str,
) -> Release {
    release(version, ReleaseKind::Config, build, config, description)
}

fn pipeline() -> Event {
    created(&["staging", "production"])
}

fn unknown_env(name: &str) -> DomainError {
    DomainError::UnknownEnv {
        app: app(),
        env: env(name),
        pipeline: "staging, production".into(),
    }
}

// ---- CreateApp ---------------------------------------------------------------------------------

#[test]
fn create_app_records_its_pipeline_in_order() {
    given([])
        .when(Command::CreateApp {
            pipeline: vec![env("dev"), env("staging"), env("production")],
        })
        .then_expect(vec![created(&["dev", "staging", "production"])]);
}

#[test]
fn create_app_rejects_an_existing_app() {
    given([pipeline()])
        .when(Command::CreateApp {
            pipeline: vec![env("staging")],
        })
        .then_reject(DomainError::AppExists(app()));
}

#[test]
fn create_app_rejects_an_empty_pipeline() {
    given([])
        .when(Command::CreateApp { pipeline: vec![] })
        .then_reject(DomainError::EmptyPipeline(app()));
}

#[test]
fn create_app_rejects_a_duplicate_env() {
    given([])
        .when(Command::CreateApp {
            pipeline: vec![env("staging"), env("production"), env("staging")],
        })
        .then_reject(DomainError::DuplicateEnv {
            app: app(),
            env: env("staging"),
        });
}

#[test]
fn every_other_command_needs_the_app_to_exist() {
    let commands = [
        Command::RegisterBuild {
            image: image('a'),
            commit: None,
            note: None,
            processes: Default::default(),
            release_command: None,
        },
        Command::Deploy {
            env: env("staging"),
            artifact: Artifact::Image(image('a')),
        },
        Command::SetConfig {
            env: env("staging"),
            values: config(&[("A", "1")]),
        },
        Command::UnsetConfig {
            env: env("staging"),
            keys: [key("A")].into(),
        },
        Command::Promote {
            from: env("staging"),
            to: None,
        },
        Command::Rollback {
            env: env("staging"),
            to: None,
        },
        Command::Lock {
            env: env("staging"),
            reason: "freeze".into(),
        },
        Command::Unlock {
            env: env("staging"),
        },
    ];
    for command in commands {
        given([])
            .when(command)
            .then_reject(DomainError::UnknownApp(app()));
    }
}

// ---- RegisterBuild -----------------------------------------------------------------------------

#[test]
fn register_build_records_image_commit_and_note() {
    let state = given([pipeline()])
        .when(Command::RegisterBuild {
            image: image('a'),
            commit: Some("abc1234".into()),
            note: Some("fix login".into()),
            processes: Default::default(),
            release_command: None,
        })
        .then_expect(vec![registered(Build {
            commit: Some("abc1234".into()),
            note: Some("fix login".into()),
            ..Build::of_image(image('a'))
        })]);
    assert!(state.builds.contains_key(&image('a').build_id()));
}

#[test]
fn register_build_of_an_already_registered_image_is_a_no_op() {
    given([pipeline(), registered(Build::of_image(image('a')))])
        .when(Command::RegisterBuild {
            image: image('a'),
            commit: Some("other".into()),
            note: None,
            processes: Default::default(),
            release_command: None,
        })
        .then_expect(vec![]);
}

#[test]
fn register_build_of_an_image_already_deployed_by_ref_is_a_no_op() {
    given([
        pipeline(),
        released("staging", deploy(1, 'a', Config::new())),
    ])
    .when(Command::RegisterBuild {
        image: image('a'),
        commit: None,
        note: None,
        processes: Default::default(),
        release_command: None,
    })
    .then_expect(vec![]);
}

// ---- Deploy ------------------------------------------------------------------------------------

#[test]
fn deploy_by_image_of_an_unregistered_image_registers_the_build_through_the_release() {
    let state = given([pipeline()])
        .when(Command::Deploy {
            env: env("staging"),
            artifact: Artifact::Image(image('a')),
        })
        .then_expect(vec![released("staging", deploy(1, 'a', Config::new()))]);
    assert_eq!(
        state.builds.get(&image('a').build_id()),
        Some(&Build::of_image(image('a')))
    );
}

#[test]
fn deploy_by_image_of_a_registered_image_uses_the_registered_build() {
    let build = Build {
        commit: Some("abc1234".into()),
        ..Build::of_image(image('a'))
    };
    given([pipeline(), registered(build.clone())])
        .when(Command::Deploy {
            env: env("staging"),
            artifact: Artifact::Image(image('a')),
        })
        .then_expect(vec![released(
            "staging",
            deploy_of(1, build, Config::new()),
        )]);
}

#[test]
fn deploy_by_build_id_releases_the_registered_build() {
    let build = Build {
        note: Some("hotfix".into()),
        ..Build::of_image(image('b'))
    };
    given([pipeline(), registered(build.clone())])
        .when(Command::Deploy {
            env: env("production"),
            artifact: Artifact::Build(build.id.clone()),
        })
        .then_expect(vec![released(
            "production",
            deploy_of(1, build, Config::new()),
        )]);
}

#[test]
fn deploy_by_an_unknown_build_id_is_rejected() {
    given([pipeline(), registered(Build::of_image(image('a')))])
        .when(Command::Deploy {
            env: env("staging"),
            artifact: Artifact::Build(image('b').build_id()),
        })
        .then_reject(DomainError::UnknownBuild {
            app: app(),
            build: image('b').build_id(),
        });
}

#[test]
fn deploy_to_an_env_outside_the_pipeline_is_rejected() {
    given([pipeline()])
        .when(Command::Deploy {
            env: env("qa"),
            artifact: Artifact::Image(image('a')),
        })
        .then_reject(unknown_env("qa"));
}

#[test]
fn a_release_is_the_image_with_the_full_current_config() {
    given([
        pipeline(),
        released("staging", deploy(1, 'a', Config::new())),
        released(
            "staging",
            config_release(
                2,
                Some(Build::of_image(image('a'))),
                config(&[("A", "1"), ("B", "2")]),
                "Set A, B",
            ),
        ),
    ])
    .when(Command::Deploy {
        env: env("staging"),
        artifact: Artifact::Image(image('b')),
    })
    .then_expect(vec![released(
        "staging",
        deploy(3, 'b', config(&[("A", "1"), ("B", "2")])),
    )]);
}

#[test]
fn versions_count_per_env_from_v1() {
    given([
        pipeline(),
        released("staging", deploy(1, 'a', Config::new())),
        released("staging", deploy(2, 'b', Config::new())),
    ])
    .when(Command::Deploy {
        env: env("production"),
        artifact: Artifact::Image(image('c')),
    })
    .then_expect(vec![released("production", deploy(1, 'c', Config::new()))]);
}

// ---- SetConfig ---------------------------------------------------------------------------------

#[test]
fn set_config_makes_a_config_release_over_the_current_config_and_build() {
    let sealed = ConfigValue::Sealed(vec![7; 40]);
    let mut values = config(&[("B", "new"), ("C", "3")]);
    values.insert(key("TOKEN"), sealed.clone());
    let mut expected_config = config(&[("A", "1"), ("B", "new"), ("C", "3")]);
    expected_config.insert(key("TOKEN"), sealed);
    given([
        pipeline(),
        released(
            "staging",
            deploy(1, 'a', config(&[("A", "1"), ("B", "old")])),
        ),
    ])
    .when(Command::SetConfig {
        env: env("staging"),
        values,
    })
    .then_expect(vec![released(
        "staging",
        config_release(
            2,
            Some(Build::of_image(image('a'))),
            expected_config,
            "Set B, C, TOKEN",
        ),
    )]);
}

#[test]
fn set_config_before_any_deploy_makes_a_release_without_an_image() {
    given([pipeline()])
        .when(Command::SetConfig {
            env: env("production"),
            values: config(&[("A", "1")]),
        })
        .then_expect(vec![released(
            "production",
            config_release(1, None, config(&[("A", "1")]), "Set A"),
        )]);
}

#[test]
fn set_config_without_values_is_rejected() {
    given([pipeline()])
        .when(Command::SetConfig {
            env: env("staging"),
            values: Config::new(),
        })
        .then_reject(DomainError::Empty {
            field: "config set",
            what: "KEY=VALUE",
        });
}

#[test]
fn set_config_in_an_unknown_env_is_rejected() {
    given([pipeline()])
        .when(Command::SetConfig {
            env: env("qa"),
            values: config(&[("A", "1")]),
        })
        .then_reject(unknown_env("qa"));
}

// ---- UnsetConfig -------------------------------------------------------------------------------

#[test]
fn unset_config_makes_a_config_release_without_those_keys() {
    given([
        pipeline(),
        released(
            "staging",
            deploy(1, 'a', config(&[("A", "1"), ("B", "2"), ("C", "3")])),
        ),
    ])
    .when(Command::UnsetConfig {
        env: env("staging"),
        keys: [key("C"), key("A")].into(),
    })
    .then_expect(vec![released(
        "staging",
        config_release(
            2,
            Some(Build::of_image(image('a'))),
            config(&[("B", "2")]),
            "Unset A, C",
        ),
    )]);
}

#[test]
fn unset_config_of_a_missing_key_is_rejected() {
    given([
        pipeline(),
        released("staging", deploy(1, 'a', config(&[("A", "1")]))),
    ])
    .when(Command::UnsetConfig {
        env: env("staging"),
        keys: [key("A"), key("NOPE")].into(),
    })
    .then_reject(DomainError::KeyNotSet {
        app: app(),
        env: env("staging"),
        key: key("NOPE"),
    });
}

#[test]
fn unset_config_without_keys_is_rejected() {
    given([
        pipeline(),
        released("staging", deploy(1, 'a', config(&[("A", "1")]))),
    ])
    .when(Command::UnsetConfig {
        env: env("staging"),
        keys: Default::default(),
    })
    .then_reject(DomainError::Empty {
        field: "config unset",
        what: "KEY",
    });
}

#[test]
fn unset_config_in_an_unknown_env_is_rejected() {
    given([pipeline()])
        .when(Command::UnsetConfig {
            env: env("qa"),
            keys: [key("A")].into(),
        })
        .then_reject(unknown_env("qa"));
}

// ---- Promote -----------------------------------------------------------------------------------

/// staging: v1 deploy a, v2 deploy b with its own config; production: v1 deploy a with its own.
fn promotable() -> Vec<Event> {
    vec![
        pipeline(),
        released("staging", deploy(1, 'a', config(&[("ENV", "staging")]))),
        released("staging", deploy(2, 'b', config(&[("ENV", "staging")]))),
        released(
            "production",
            deploy(1, 'a', config(&[("ENV", "production"), ("REPLICAS", "3")])),
        ),
    ]
}

fn promotion(version: u64, hex: char, config: Config, from: &str, from_version: u64) -> Release {
    let description = format!("Promote {from} v{from_version} ({})", image(hex).short());
    Release {
        source: Some(PromotionSource {
            env: env(from),
            version: v(from_version),
        }),
        ..release(
            version,
            ReleaseKind::Promote,
            Some(Build::of_image(image(hex))),
            config,
            &description,
        )
    }
}

#[test]
fn promote_copies_the_source_build_into_the_next_env_keeping_the_target_config() {
    given(promotable())
        .when(Command::Promote {
            from: env("staging"),
            to: None,
        })
        .then_expect(vec![released(
            "production",
            promotion(
                2,
                'b',
                config(&[("ENV", "production"), ("REPLICAS", "3")]),
                "staging",
                2,
            ),
        )]);
}

#[test]
fn promote_with_to_goes_to_the_named_env_even_backwards() {
    let mut history = promotable();
    history[0] = created(&["dev", "staging", "production"]);
    given(history)
        .when(Command::Promote {
            from: env("production"),
            to: Some(env("dev")),
        })
        .then_expect(vec![released(
            "dev",
            promotion(1, 'a', Config::new(), "production", 1),
        )]);
}

#[test]
fn promote_with_to_may_skip_envs() {
    given([
        created(&["dev", "staging", "production"]),
        released("dev", deploy(1, 'c', config(&[("ENV", "dev")]))),
        released(
            "production",
            config_release(1, None, config(&[("ENV", "production")]), "Set ENV"),
        ),
    ])
    .when(Command::Promote {
        from: env("dev"),
        to: Some(env("production")),
    })
    .then_expect(vec![released(
        "production",
        promotion(2, 'c', config(&[("ENV", "production")]), "dev", 1),
    )]);
}

#[test]
fn promote_from_the_last_env_without_to_is_rejected() {
    given(promotable())
        .when(Command::Promote {
            from: env("production"),
            to: None,
        })
        .then_reject(DomainError::NoNextEnv {
            app: app(),
            env: env("production"),
        });
}

#[test]
fn promote_from_an_env_with_no_release_is_rejected() {
    given([pipeline()])
        .when(Command::Promote {
            from: env("staging"),
            to: None,
        })
        .then_reject(DomainError::NothingToPromote {
            app: app(),
            env: env("staging"),
        });
}

#[test]
fn promote_from_an_env_with_only_config_releases_is_rejected() {
    given([
        pipeline(),
        released(
            "staging",
            config_release(1, None, config(&[("A", "1")]), "Set A"),
        ),
    ])
    .when(Command::Promote {
        from: env("staging"),
        to: None,
    })
    .then_reject(DomainError::NothingToPromote {
        app: app(),
        env: env("staging"),
    });
}

#[test]
fn promote_to_itself_is_rejected() {
    given(promotable())
        .when(Command::Promote {
            from: env("staging"),
            to: Some(env("staging")),
        })
        .then_reject(DomainError::PromoteToSelf {
            app: app(),
            env: env("staging"),
        });
}

#[test]
fn promote_from_or_to_an_unknown_env_is_rejected() {
    given(promotable())
        .when(Command::Promote {
            from: env("qa"),
            to: None,
        })
        .then_reject(unknown_env("qa"));
    given(promotable())
        .when(Command::Promote {
            from: env("staging"),
            to: Some(env("qa")),
        })
        .then_reject(unknown_env("qa"));
}

// ---- Rollback ----------------------------------------------------------------------------------

/// staging: v1 deploy a with A=1, v2 config A=2, v3 deploy b with A=2.
fn three_releases() -> Vec<Event> {
    vec![
        pipeline(),
        released("staging", deploy(1, 'a', config(&[("A", "1")]))),
        released(
            "staging",
            config_release(
                2,
                Some(Build::of_image(image('a'))),
                config(&[("A", "2")]),
                "Set A",
            ),
        ),
        released("staging", deploy(3, 'b', config(&[("A", "2")]))),
    ]
}

fn rollback(version: u64, hex: char, config: Config, to: u64) -> Release {
    Release {
        rollback_to: Some(v(to)),
        ..release(
            version,
            ReleaseKind::Rollback,
            Some(Build::of_image(image(hex))),
            config,
            &format!("Rollback to v{to}"),
        )
    }
}

#[test]
fn rollback_by_default_copies_image_and_config_of_the_release_before_the_current() {
    given(three_releases())
        .when(Command::Rollback {
            env: env("staging"),
            to: None,
        })
        .then_expect(vec![
            released("staging", rollback(4, 'a', config(&[("A", "2")]), 2)),
            pinned_by_rollback("staging", 2),
        ]);
}

#[test]
fn rollback_to_a_version_copies_its_image_and_config() {
    given(three_releases())
        .when(Command::Rollback {
            env: env("staging"),
            to: Some(v(1)),
        })
        .then_expect(vec![
            released("staging", rollback(4, 'a', config(&[("A", "1")]), 1)),
            pinned_by_rollback("staging", 1),
        ]);
}

#[test]
fn rollback_after_a_rollback_goes_to_the_release_before_it_in_history() {
    let mut history = three_releases();
    history.push(released(
        "staging",
        rollback(4, 'a', config(&[("A", "1")]), 1),
    ));
    given(history)
        .when(Command::Rollback {
            env: env("staging"),
            to: None,
        })
        .then_expect(vec![
            released("staging", rollback(5, 'b', config(&[("A", "2")]), 3)),
            pinned_by_rollback("staging", 3),
        ]);
}

#[test]
fn rollback_to_the_current_version_is_rejected() {
    given(three_releases())
        .when(Command::Rollback {
            env: env("staging"),
            to: Some(v(3)),
        })
        .then_reject(DomainError::NothingToRollBack {
            app: app(),
            env: env("staging"),
            why: "v3 is already the current release".into(),
        });
}

#[test]
fn rollback_with_a_single_release_is_rejected() {
    let single = || {
        given([
            pipeline(),
            released("staging", deploy(1, 'a', Config::new())),
        ])
    };
    single()
        .when(Command::Rollback {
            env: env("staging"),
            to: None,
        })
        .then_reject(DomainError::NothingToRollBack {
            app: app(),
            env: env("staging"),
            why: "v1 is its only release".into(),
        });
    single()
        .when(Command::Rollback {
            env: env("staging"),
            to: Some(v(1)),
        })
        .then_reject(DomainError::NothingToRollBack {
            app: app(),
            env: env("staging"),
            why: "v1 is already the current release".into(),
        });
}

#[test]
fn rollback_with_no_release_is_rejected() {
    given([pipeline()])
        .when(Command::Rollback {
            env: env("production"),
            to: None,
        })
        .then_reject(DomainError::NothingToRollBack {
            app: app(),
            env: env("production"),
            why: "it has no releases".into(),
        });
}

#[test]
fn rollback_to_a_missing_version_is_rejected() {
    given(three_releases())
        .when(Command::Rollback {
            env: env("staging"),
            to: Some(v(9)),
        })
        .then_reject(DomainError::UnknownVersion {
            app: app(),
            env: env("staging"),
            version: v(9),
            latest: "v3".into(),
        });
}

#[test]
fn rollback_in_an_unknown_env_is_rejected() {
    given(three_releases())
        .when(Command::Rollback {
            env: env("qa"),
            to: None,
        })
        .then_reject(unknown_env("qa"));
}

// ---- Lock and Unlock ---------------------------------------------------------------------------

#[test]
fn lock_records_the_reason() {
    let state = given([pipeline()])
        .when(Command::Lock {
            env: env("production"),
            reason: "release freeze".into(),
        })
        .then_expect(vec![locked("production", "release freeze")]);
    let lock = state
        .env(&env("production"))
        .unwrap()
        .lock
        .as_ref()
        .unwrap();
    assert_eq!(
        (lock.actor.as_str(), lock.reason.as_str()),
        (ACTOR, "release freeze")
    );
}

#[test]
fn lock_without_a_reason_is_rejected() {
    given([pipeline()])
        .when(Command::Lock {
            env: env("production"),
            reason: "  ".into(),
        })
        .then_reject(DomainError::EmptyReason);
}

#[test]
fn lock_of_a_locked_env_is_rejected_naming_the_lock() {
    given_by([
        (ACTOR, pipeline()),
        ("bob@example.com", locked("production", "incident 42")),
    ])
    .when(Command::Lock {
        env: env("production"),
        reason: "mine".into(),
    })
    .then_reject(DomainError::Locked {
        app: app(),
        env: env("production"),
        by: "bob@example.com".into(),
        reason: "incident 42".into(),
    });
}

#[test]
fn lock_of_an_unknown_env_is_rejected() {
    given([pipeline()])
        .when(Command::Lock {
            env: env("qa"),
            reason: "why".into(),
        })
        .then_reject(unknown_env("qa"));
}

#[test]
fn unlock_records_the_unlock_and_frees_the_env() {
    let state = given([pipeline(), locked("production", "freeze")])
        .when(Command::Unlock {
            env: env("production"),
        })
        .then_expect(vec![Event::EnvUnlocked {
            env: env("production"),
        }]);
    assert_eq!(state.env(&env("production")).unwrap().lock, None);
}

#[test]
fn unlock_of_an_unlocked_env_is_rejected() {
    given([
        pipeline(),
        locked("production", "freeze"),
        Event::EnvUnlocked {
            env: env("production"),
        },
    ])
    .when(Command::Unlock {
        env: env("production"),
    })
    .then_reject(DomainError::NotLocked {
        app: app(),
        env: env("production"),
    });
    given([pipeline()])
        .when(Command::Unlock {
            env: env("staging"),
        })
        .then_reject(DomainError::NotLocked {
            app: app(),
            env: env("staging"),
        });
}

#[test]
fn unlock_of_an_unknown_env_is_rejected() {
    given([pipeline()])
        .when(Command::Unlock { env: env("qa") })
        .then_reject(unknown_env("qa"));
}

/// Production locked by bob, with one release; staging has a newer build to promote.
fn production_locked_by_bob() -> Given {
    given_by([
        (ACTOR, pipeline()),
        (ACTOR, released("staging", deploy(1, 'a', Config::new()))),
        (ACTOR, released("staging", deploy(2, 'b', Config::new()))),
        (
            ACTOR,
            released("production", deploy(1, 'a', config(&[("A", "1")]))),
        ),
        (
            ACTOR,
            released(
                "production",
                config_release(
                    2,
                    Some(Build::of_image(image('a'))),
                    config(&[("A", "2")]),
                    "Set A",
                ),
            ),
        ),
        ("bob@example.com", locked("production", "incident 42")),
    ])
}

#[test]
fn a_locked_env_rejects_deploy_promote_and_config_changes_naming_who_and_why() {
    let lock = DomainError::Locked {
        app: app(),
        env: env("production"),
        by: "bob@example.com".into(),
        reason: "incident 42".into(),
    };
    let commands = [
        Command::Deploy {
            env: env("production"),
            artifact: Artifact::Image(image('c')),
        },
        Command::Deploy {
            env: env("production"),
            artifact: Artifact::Build(image('b').build_id()),
        },
        Command::Promote {
            from: env("staging"),
            to: None,
        },
        Command::Promote {
            from: env("staging"),
            to: Some(env("production")),
        },
        Command::SetConfig {
            env: env("production"),
            values: config(&[("A", "3")]),
        },
        Command::UnsetConfig {
            env: env("production"),
            keys: [key("A")].into(),
        },
    ];
    for command in commands {
        let message = production_locked_by_bob()
            .when(command)
            .then_reject(lock.clone());
        assert!(
            message.contains("bob@example.com") && message.contains("incident 42"),
            "{message}"
        );
    }
}

#[test]
fn a_locked_env_still_allows_rollback() {
    production_locked_by_bob()
        .when(Command::Rollback {
            env: env("production"),
            to: None,
        })
        .then_expect(vec![
            released("production", rollback(3, 'a', config(&[("A", "1")]), 1)),
            pinned_by_rollback("production", 1),
        ]);
}

#[test]
fn a_locked_env_can_still_be_promoted_from() {
    production_locked_by_bob()
        .when(Command::Promote {
            from: env("production"),
            to: Some(env("staging")),
        })
        .then_expect(vec![released(
            "staging",
            promotion(3, 'a', Config::new(), "production", 2),
        )]);
}

#[test]
fn a_lock_only_affects_its_own_env() {
    production_locked_by_bob()
        .when(Command::Deploy {
            env: env("staging"),
            artifact: Artifact::Image(image('c')),
        })
        .then_expect(vec![released("staging", deploy(3, 'c', Config::new()))]);
}

// ---- limits ------------------------------------------------------------------------------------

#[test]
fn a_config_value_over_its_limit_is_rejected_naming_the_key_and_the_limit() {
    let limit = hoist_engine::names::limits::CONFIG_VALUE_BYTES;
    let at_limit = "x".repeat(limit);
    given([created(&["staging"])])
        .when(Command::SetConfig {
            env: env("staging"),
            values: config(&[("CERT", &at_limit)]),
        })
        .result
        .expect("a value of exactly the limit is accepted");
    let message = given([created(&["staging"])])
        .when(Command::SetConfig {
            env: env("staging"),
            values: config(&[("CERT", &format!("{at_limit}x"))]),
        })
        .then_reject(DomainError::TooLarge {
            field: "config value of CERT".into(),
            size: limit + 1,
            limit,
        });
    assert_eq!(
        message,
        "config value of CERT is 32769 bytes: the limit is 32768 bytes"
    );
}

#[test]
fn a_release_config_over_its_limit_is_rejected_even_when_each_value_fits() {
    let value = "x".repeat(30 * 1024);
    let mut history = vec![created(&["staging"])];
    let existing: Vec<(String, &str)> = (0..8).map(|i| (format!("K{i}"), value.as_str())).collect();
    let pairs: Vec<(&str, &str)> = existing.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    history.push(released(
        "staging",
        config_release(1, None, config(&pairs), "Set K0, …"),
    ));
    let message = given(history)
        .when(Command::SetConfig {
            env: env("staging"),
            values: config(&[("ONE_MORE", &value)]),
        })
        .then_reject(DomainError::TooLarge {
            field: "the config of api/staging (keys and values)".into(),
            size: 9 * 30 * 1024 + 8 * 2 + "ONE_MORE".len(),
            limit: hoist_engine::names::limits::RELEASE_CONFIG_BYTES,
        });
    assert!(message.contains("the limit is 262144 bytes"), "{message}");
}

#[test]
fn a_long_list_of_keys_is_described_cut_and_counted() {
    let names: Vec<String> = (0..500)
        .map(|i| format!("SOME_LONGER_KEY_{i:03}"))
        .collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|k| (k.as_str(), "1")).collect();
    let events = given([created(&["staging"])])
        .when(Command::SetConfig {
            env: env("staging"),
            values: config(&pairs),
        })
        .result
        .unwrap();
    let Event::ReleaseCreated { release, .. } = &events[0] else {
        panic!("a release: {events:?}")
    };
    let description = &release.description;
    assert!(description.len() <= hoist_engine::names::limits::DESCRIPTION_BYTES);
    assert!(description.starts_with("Set SOME_LONGER_KEY_000, SOME_LONGER_KEY_001"));
    assert!(description.ends_with(" more"), "{description}");
}

#[test]
fn a_lock_reason_a_note_and_a_commit_over_their_limits_are_rejected() {
    let reason = "r".repeat(1025);
    given([created(&["staging"])])
        .when(Command::Lock {
            env: env("staging"),
            reason: reason.clone(),
        })
        .then_reject(DomainError::TooLarge {
            field: "lock reason".into(),
            size: 1025,
            limit: 1024,
        });
    given([created(&["staging"])])
        .when(Command::RegisterBuild {
            image: image('a'),
            commit: None,
            note: Some(reason),
            processes: Default::default(),
            release_command: None,
        })
        .then_reject(DomainError::TooLarge {
            field: "--note".into(),
            size: 1025,
            limit: 1024,
        });
    given([created(&["staging"])])
        .when(Command::RegisterBuild {
            image: image('a'),
            commit: Some("c".repeat(257)),
            note: None,
            processes: Default::default(),
            release_command: None,
        })
        .then_reject(DomainError::TooLarge {
            field: "--commit".into(),
            size: 257,
            limit: 256,
        });
}

#[test]
fn a_config_key_over_its_limit_is_rejected_by_decide_but_still_decodes() {
    let limit = hoist_engine::names::limits::CONFIG_KEY_BYTES;
    let long = "K".repeat(limit + 1);
    given([created(&["staging"])])
        .when(Command::SetConfig {
            env: env("staging"),
            values: config(&[(&long[..limit], "1")]),
        })
        .result
        .expect("a key of exactly the limit is accepted");
    given([created(&["staging"])])
        .when(Command::SetConfig {
            env: env("staging"),
            values: config(&[(&long, "1")]),
        })
        .then_reject(DomainError::TooLarge {
            field: "a config key".into(),
            size: limit + 1,
            limit,
        });
    // A commit written before the limit holds such a key: it still decodes, so the app's
    // history is neither quarantined nor unreadable.
    let release = config_release(1, None, config(&[(&long, "1")]), "Set K…");
    let envelope = Envelope {
        id: Uuid::now_v7(),
        app: app(),
        at: at(1),
        actor: "ana@example.com".parse().unwrap(),
        via: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        prev_hash: None,
        event: Some(released("staging", release)),
    };
    let payload = hoist_engine::codec::encode_commit(std::slice::from_ref(&envelope));
    let decoded = hoist_engine::codec::decode_commit(1, &payload).expect("decodes");
    assert_eq!(decoded[0].envelope, envelope);
}
