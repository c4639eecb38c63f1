//! The read models are a pure function of the log: caught up incrementally at any cuts, they
//! equal a rebuild from scratch, and both give the engine's own fold's answers (status, release
//! history, audit). A log replaced under them (a checkpoint past its end) is refolded. The models
//! are kept in memory (`MemoryModels`) and in sled on disk (`SledModels`), and agree row for row.
//!
//! `AppStatus` (the models) and `AppState` (the engine) fold the same events twice: the
//! histories here draw every command kind, and every field `status` shows (current release,
//! lock, last rollout) is compared, so a fold that drifts from the other fails here. Access
//! commands (grants, tokens, links, on the access chain) and a `via` on some commands are drawn
//! too: `audit` shows both.

use chrono::{TimeZone, Utc};
use hoist_engine::models::{ModelDb, ModelError, ModelStore};
use hoist_engine::service::{execute, execute_access, load_events, CommandContext};
use hoist_engine::store::EventStore;
use hoist_engine::{
    AccessCommand, AppName, AppState, Artifact, Command, ConfigKey, ConfigValue, EnvName, Grant,
    ImageRef, Outcome, ReleaseVersion, Role, Target, TokenHash,
};
use hoist_projections::audit::{AuditEntry, AuditQuery};
use hoist_projections::store::{ProjectionError, ProjectionStore, Sizes};
use hoist_stores::memory::{MemoryModels, MemoryStore};
use hoist_stores::models::SledModels;
use proptest::prelude::*;
use std::path::Path;
use std::sync::Mutex;

const APPS: [&str; 3] = ["api", "web", "worker"];
const ENVS: [&str; 2] = ["staging", "production"];

fn env(i: usize) -> EnvName {
    ENVS[i % 2].parse().unwrap()
}

fn image(n: usize) -> ImageRef {
    format!(
        "registry.example/x@sha256:{}",
        format!("{:x}", n % 16).repeat(64)
    )
    .parse()
    .unwrap()
}

/// How many kinds of step [`command`] draws from: every kind of command there is.
const KINDS: u8 = 15;

/// One step of a random history: (app, what, a small number). Every command kind is drawn,
/// targets, policies and rollouts included: they change what `status` shows (APPLIED, HEALTH)
/// and, with auto-rollback on, a failed rollout appends a release of its own.
fn command(what: u8, n: u8) -> Command {
    let n = usize::from(n);
    match what % KINDS {
        0 => Command::CreateApp {
            pipeline: ENVS.iter().map(|e| e.parse().unwrap()).collect(),
        },
        1 | 2 => Command::Deploy {
            env: env(n),
            artifact: Artifact::Image(image(n)),
        },
        3 => Command::SetConfig {
            env: env(n),
            values: [(
                format!("K{}", n % 3).parse::<ConfigKey>().unwrap(),
                ConfigValue::Plain(format!("v{n}")),
            )]
            .into(),
        },
        4 => Command::Promote {
            from: env(0),
            to: n.is_multiple_of(3).then(|| env(1)),
        },
        5 => Command::Rollback {
            env: env(n),
            to: ReleaseVersion::new((n % 4) as u64).filter(|_| n % 5 == 0),
        },
        6 if n.is_multiple_of(2) => Command::Lock {
            env: env(n / 2),
            reason: format!("freeze {n}"),
        },
        6 => Command::Unlock { env: env(n / 2) },
        7 => Command::RegisterBuild {
            image: image(n),
            commit: Some(format!("{n:07x}")),
            note: None,
            processes: Default::default(),
            release_command: None,
        },
        8 => Command::UnsetConfig {
            env: env(n),
            keys: [format!("K{}", n % 3).parse::<ConfigKey>().unwrap()].into(),
        },
        9 => Command::SetTarget {
            env: env(n),
            target: match n % 3 {
                0 => Target::None,
                1 => Target::Manifests {
                    dir: format!("/srv/manifests/{}", n % 2),
                    routing: Default::default(),
                },
                _ => Target::Exec {
                    command: "deploy.sh".into(),
                    pass_env: Default::default(),
                },
            },
        },
        10 => Command::SetPolicy {
            env: env(n),
            auto_rollback: n % 3 != 0,
        },
        _ => Command::RecordRollout {
            env: env(n),
            // Small versions, so that most name a release that exists.
            version: ReleaseVersion::new((n % 4) as u64 + 1).unwrap(),
            outcome: [Outcome::Applied, Outcome::Healthy, Outcome::Failed][(n / 4) % 3],
            detail: format!("rollout {n}"),
        },
    }
}

/// A step on the access chain: a grant, a revocation, a token, a chat link.
fn access_command(what: u8, n: u8) -> AccessCommand {
    let identity = format!("id{}@example.com", n % 3).parse().unwrap();
    let grant = Grant {
        role: Role::ALL[usize::from(n) % 4],
        app: (!n.is_multiple_of(3)).then(|| APPS[usize::from(n) % APPS.len()].parse().unwrap()),
        env: n.is_multiple_of(2).then(|| env(usize::from(n / 2))),
    };
    let chat_id = format!("slack:T1/U{}", n % 2).parse().unwrap();
    match what % 6 {
        0 | 1 => AccessCommand::Grant { identity, grant },
        2 => AccessCommand::Revoke { identity, grant },
        3 => AccessCommand::CreateToken {
            id: format!("{:012x}", u32::from(what) << 8 | u32::from(n))
                .parse()
                .unwrap(),
            identity,
            name: None,
            hash: TokenHash::of(&format!("hoist_{what}_{n}")),
            expires_at: None,
        },
        4 => AccessCommand::Link { chat_id, identity },
        _ => AccessCommand::Unlink { chat_id },
    }
}

async fn write(log: &MemoryStore, steps: &[(usize, u8, u8)], first: usize) {
    for (i, &(app, what, n)) in steps.iter().enumerate() {
        let mut ctx = CommandContext::new(format!("dev{}@example.com", n % 2).parse().unwrap());
        ctx.at = Utc
            .timestamp_opt(1_790_000_000 + (first + i) as i64, 0)
            .unwrap();
        ctx.via = n.is_multiple_of(3).then(|| "api".to_string());
        // Rejected commands (rollback with nothing to roll back to, deploy to a locked env…)
        // append nothing; that is part of a realistic history too.
        if app == APPS.len() {
            let _ = execute_access(log, &access_command(what, n), &ctx).await;
            continue;
        }
        let app: AppName = APPS[app % APPS.len()].parse().unwrap();
        let _ = execute(log, &app, &command(what, n), &ctx).await;
    }
}

fn in_memory(models: &MemoryModels, sizes: Sizes) -> ProjectionStore {
    ProjectionStore::new(Box::new(models.clone()), sizes).unwrap()
}

fn on_disk(dir: &Path, sizes: Sizes) -> ProjectionStore {
    ProjectionStore::new(Box::new(SledModels::open(dir).unwrap()), sizes).unwrap()
}

/// Sizes small enough that a short history crosses every boundary: queries read back in
/// windows of 1–7 commits, catch-ups read pages of 1–15 commits (some folded on a thread of
/// their own while the next is read, some in line) and write the model every 1–63 commits.
fn small_sizes() -> impl Strategy<Value = Sizes> {
    (1..8u64, 1..16usize, 1..64u64).prop_map(|(read_window, page, write_every)| Sizes {
        read_window,
        page,
        write_every,
    })
}

/// Small sizes, for the tests that are not about them.
const SMALL: Sizes = Sizes {
    read_window: 4,
    page: 4,
    write_every: 8,
};

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// The models' answers equal the engine's fold of each app's events.
async fn assert_answers_match_the_fold(log: &MemoryStore, models: &mut ProjectionStore) {
    for app in log.apps().await.unwrap() {
        let events = load_events(log, &app).await.unwrap();
        let state = AppState::fold(&events);
        let status = models
            .status(&app)
            .unwrap()
            .expect("every app has a status");
        // Everything `status` shows, and the fold's bookkeeping: the two folds must agree.
        assert_eq!(status.pipeline, state.pipeline, "{app} pipeline");
        assert_eq!(status.created_at, state.created_at, "{app} created_at");
        assert_eq!(status.event_count, state.event_count, "{app} event count");
        assert_eq!(status.last_seq, state.last_seq, "{app} last seq");
        assert_eq!(
            status.skipped_unknown, state.skipped_unknown,
            "{app} skipped"
        );
        assert!(
            status.envs.keys().eq(state.envs.keys()),
            "{app} envs: {:?} vs {:?}",
            status.envs.keys(),
            state.envs.keys()
        );
        for (env, env_state) in &state.envs {
            let modelled = &status.envs[env];
            // VERSION, IMAGE, RELEASED: the current release, whole.
            assert_eq!(
                modelled.current(),
                env_state.current(),
                "{app}/{env} current"
            );
            assert_eq!(
                modelled.release_count,
                env_state.releases.len() as u64,
                "{app}/{env} release count"
            );
            // LOCKED, by whom, why.
            assert_eq!(modelled.lock, env_state.lock, "{app}/{env} lock");
            // APPLIED and HEALTH: the last rollout recorded.
            assert_eq!(modelled.rollout, env_state.rollout, "{app}/{env} rollout");
            let all: Vec<_> = env_state.releases.iter().rev().cloned().collect();
            for limit in [1, 5, usize::MAX] {
                let releases = models
                    .releases(log, &app, &status, env, limit)
                    .await
                    .unwrap();
                let expected: Vec<_> = all.iter().take(limit).cloned().collect();
                assert_eq!(releases, expected, "{app}/{env} releases, limit {limit}");
            }
        }
        let audit: Vec<AuditEntry> = events.iter().rev().map(AuditEntry::of).collect();
        for (limit, env) in [
            (3, None),
            (40, None),
            (usize::MAX, None),
            (10, Some(env(1))),
        ] {
            let query = AuditQuery {
                app: Some(app.clone()),
                env: env.clone(),
                ..AuditQuery::default()
            };
            let expected: Vec<_> = audit
                .iter()
                .filter(|e| query.matches(e))
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(
                models.audit(log, &query, limit).await.unwrap(),
                expected,
                "audit of {app}, limit {limit}, env {env:?}"
            );
        }
    }
    let everything = models
        .audit(log, &AuditQuery::default(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(everything.len() as u64, {
        let all = log.read_from(1, usize::MAX).await.unwrap();
        hoist_engine::service::decode_commits(&all).unwrap().len() as u64
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn rebuilt_models_equal_incrementally_maintained_ones_at_any_cuts(
        // App index 3 is the access chain.
        steps in proptest::collection::vec((0..4usize, 1..KINDS, any::<u8>()), 1..200),
        cuts in proptest::collection::btree_set(0..200usize, 0..6),
        sizes in small_sizes(),
    ) {
        run(async {
            let log = MemoryStore::default();
            // Every app is created first, so most commands have something to act on.
            write(&log, &[(0, 0, 0), (1, 0, 0), (2, 0, 0)], 0).await;
            let dir = tempfile::tempdir().unwrap();
            let mut incremental = in_memory(&MemoryModels::new(), sizes);
            let mut from = 0;
            for cut in cuts.iter().copied().chain([steps.len()]).filter(|c| *c <= steps.len()) {
                write(&log, &steps[from..cut], from + 3).await;
                from = cut;
                incremental.catch_up_state(&log).await.unwrap();
            }
            incremental.catch_up(&log, &mut |_, _| {}).await.unwrap();
            let (mut rebuilt, _) = on_disk(dir.path(), Sizes::DEFAULT)
                .rebuild(&log, &mut |_, _| {})
                .await
                .unwrap();
            let maintained = incremental.dump().unwrap();
            assert_eq!(maintained, rebuilt.dump().unwrap());
            assert_eq!(incremental.checkpoint().unwrap(), log.last_seq().await.unwrap());
            assert_answers_match_the_fold(&log, &mut rebuilt).await;
            assert_answers_match_the_fold(&log, &mut incremental).await;
            let (incremental, _) = incremental.rebuild(&log, &mut |_, _| {}).await.unwrap();
            assert_eq!(incremental.dump().unwrap(), maintained, "a rebuild in memory");
        });
    }
}

#[test]
fn a_replaced_log_is_refolded_not_trusted() {
    run(async {
        let (old, new) = (MemoryStore::default(), MemoryStore::default());
        let steps: Vec<(usize, u8, u8)> = (0..30)
            .map(|i| (i % 3, (i % 6) as u8 + 1, i as u8))
            .collect();
        write(&old, &[(0, 0, 0), (1, 0, 0), (2, 0, 0)], 0).await;
        write(&old, &steps, 3).await;
        write(&new, &[(1, 0, 0)], 0).await;
        write(&new, &[(1, 1, 3), (1, 3, 4)], 1).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cached = on_disk(dir.path(), SMALL);
        cached.catch_up(&old, &mut |_, _| {}).await.unwrap();
        cached.catch_up_state(&new).await.unwrap();
        let mut fresh = in_memory(&MemoryModels::new(), SMALL);
        fresh.catch_up(&new, &mut |_, _| {}).await.unwrap();
        assert_eq!(cached.dump().unwrap(), fresh.dump().unwrap());
        assert!(cached.status(&"api".parse().unwrap()).unwrap().is_none());
    });
}

/// A model store whose databases named `name…` fail to open, once, with `failure`.
struct FailsOnce {
    models: MemoryModels,
    name: &'static str,
    failure: Mutex<Option<ModelError>>,
}

impl FailsOnce {
    fn new(models: &MemoryModels, name: &'static str, failure: ModelError) -> Box<FailsOnce> {
        Box::new(FailsOnce {
            models: models.clone(),
            name,
            failure: Mutex::new(Some(failure)),
        })
    }
}

impl ModelStore for FailsOnce {
    fn location(&self) -> &str {
        self.models.location()
    }
    fn open(&self, name: &str) -> Result<Box<dyn ModelDb>, ModelError> {
        if name.starts_with(self.name) {
            if let Some(failure) = self.failure.lock().unwrap().take() {
                return Err(failure);
            }
        }
        self.models.open(name)
    }
    fn list(&self, group: &str) -> Result<Vec<String>, ModelError> {
        self.models.list(group)
    }
    fn remove(&self, name: &str) -> Result<(), ModelError> {
        self.models.remove(name)
    }
    fn ensure_room(&self, bytes: u64) -> Result<(), ModelError> {
        self.models.ensure_room(bytes)
    }
    fn staging(&self) -> Result<Box<dyn ModelStore>, ModelError> {
        self.models.staging()
    }
    fn switch_in_staging(&self, names: &[&str]) -> Result<(), ModelError> {
        self.models.switch_in_staging(names)
    }
    fn discard_staging(&self) -> Result<(), ModelError> {
        self.models.discard_staging()
    }
}

fn damaged() -> ModelError {
    ModelError::Damaged {
        at: "memory/x".into(),
        message: "bad bytes".into(),
    }
}

/// A log of a few apps and the models of it, caught up.
async fn log_and_models() -> (
    MemoryStore,
    MemoryModels,
    Vec<hoist_projections::store::DumpRow>,
) {
    let log = MemoryStore::default();
    write(&log, &[(0, 0, 0), (1, 0, 0)], 0).await;
    let steps: Vec<(usize, u8, u8)> = (0..20)
        .map(|i| (i % 2, 1 + (i % 4) as u8, i as u8))
        .collect();
    write(&log, &steps, 2).await;
    let models = MemoryModels::new();
    let mut store = in_memory(&models, SMALL);
    store.catch_up(&log, &mut |_, _| {}).await.unwrap();
    let dump = store.dump().unwrap();
    (log, models, dump)
}

#[test]
fn a_damaged_model_is_thrown_away_and_folded_again() {
    run(async {
        let (log, models, folded) = log_and_models().await;
        let mut store =
            ProjectionStore::new(FailsOnce::new(&models, "state", damaged()), SMALL).unwrap();
        let why = store.recovered().expect("says why").to_string();
        assert!(why.contains("is damaged: bad bytes"), "{why}");
        assert_eq!(store.checkpoint().unwrap(), 0, "the state is thrown away");
        store.catch_up(&log, &mut |_, _| {}).await.unwrap();
        assert_eq!(store.dump().unwrap(), folded);
    });
}

/// Models of format 3 and before kept history partitions beside the state model: opened by this
/// version, they are folded again and the partitions removed.
#[test]
fn models_of_an_older_format_are_folded_again_and_their_history_removed() {
    run(async {
        let (log, _, folded) = log_and_models().await;
        let models = MemoryModels::new();
        let mut old = hoist_engine::models::Batch::default();
        old.insert(b"v".to_vec(), 3u64.to_be_bytes());
        old.insert(b"c".to_vec(), log.last_seq().await.unwrap().to_be_bytes());
        models.open("state").unwrap().apply(old).unwrap();
        let mut row = hoist_engine::models::Batch::default();
        row.insert(b"Aapi\0".to_vec(), b"a commit".to_vec());
        models
            .open("history/p0000000000")
            .unwrap()
            .apply(row)
            .unwrap();

        let mut store = in_memory(&models, SMALL);
        assert_eq!(
            store.checkpoint().unwrap(),
            0,
            "the old model is not trusted"
        );
        assert!(
            models.list("history").unwrap().is_empty(),
            "the partitions are removed"
        );
        store.catch_up(&log, &mut |_, _| {}).await.unwrap();
        assert_eq!(store.dump().unwrap(), folded);
    });
}

#[test]
fn a_model_store_that_fails_otherwise_is_reported_and_kept() {
    run(async {
        let (_log, models, folded) = log_and_models().await;
        let busy = ModelError::Unavailable {
            at: "memory".into(),
            message: "busy".into(),
        };
        let full = ModelError::Full {
            at: "memory".into(),
            free: 1,
            needed: 2,
        };
        match ProjectionStore::new(FailsOnce::new(&models, "state", busy), SMALL) {
            Err(ProjectionError::Io { message, .. }) => assert_eq!(message, "busy"),
            other => panic!("an unavailable store is reported: {:?}", other.err()),
        }
        match ProjectionStore::new(FailsOnce::new(&models, "state", full), SMALL) {
            Err(e @ ProjectionError::DiskFull { .. }) => assert_eq!(
                e.to_string(),
                "disk full: the read models in memory need 2 bytes free to be written, 1 are; \
                 free some space and run the command again"
            ),
            other => panic!("a full disk is reported: {:?}", other.err()),
        }
        assert_eq!(
            in_memory(&models, SMALL).dump().unwrap(),
            folded,
            "nothing was thrown away"
        );
    });
}

// issue 15: the state model shared on a NATS server, for fresh caches.
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Empty models seeded from a state snapshot taken at any cut, then caught up, answer as
    /// models folded from the whole log. A snapshot of another log, or past the log's end, or
    /// offered to models that are not empty, is not taken.
    #[test]
    fn models_seeded_from_a_shared_state_snapshot_answer_as_a_whole_fold(
        steps in proptest::collection::vec((0..4usize, 1..KINDS, any::<u8>()), 1..120),
        cut in 0..120usize,
        sizes in small_sizes(),
    ) {
        run(async {
            let log = MemoryStore::default();
            write(&log, &[(0, 0, 0), (1, 0, 0), (2, 0, 0)], 0).await;
            let cut = cut.min(steps.len());
            write(&log, &steps[..cut], 3).await;
            let mut writer = in_memory(&MemoryModels::new(), Sizes::DEFAULT);
            writer.catch_up(&log, &mut |_, _| {}).await.unwrap();
            let snapshot = writer.state_snapshot("HOIST@1").unwrap();
            let taken_at = writer.checkpoint().unwrap();
            write(&log, &steps[cut..], cut + 3).await;
            let end = log.last_seq().await.unwrap();

            let mut fresh = in_memory(&MemoryModels::new(), sizes);
            assert!(!fresh.seed_state(&snapshot, "HOIST@2", end).unwrap(), "another log's");
            assert!(!fresh.seed_state(&snapshot, "HOIST@1", taken_at - 1).unwrap(), "past the end");
            assert!(!fresh.seed_state(b"{}", "HOIST@1", end).unwrap(), "not a snapshot");
            assert!(fresh.seed_state(&snapshot, "HOIST@1", end).unwrap());
            assert!(!fresh.seed_state(&snapshot, "HOIST@1", end).unwrap(), "models not empty");
            fresh.catch_up_state(&log).await.unwrap();
            assert_eq!(fresh.checkpoint().unwrap(), end);
            writer.catch_up(&log, &mut |_, _| {}).await.unwrap();
            assert_eq!(fresh.statuses().unwrap(), writer.statuses().unwrap());
            assert_answers_match_the_fold(&log, &mut fresh).await;
        });
    }
}
