//! Snapshots of an app's decide state (issue 15) on the embedded log: a command decides from
//! its app's snapshot plus the commits after it and reads back the old records it needs; a
//! snapshot the log does not confirm (past the log's end, of another history, damaged, torn) is
//! ignored and the app folded from the log.

use hoist_engine::service::{execute_snapshotted, load_app, restore, CommandContext};
use hoist_engine::snapshot::{NoSnapshots, SnapshotStore};
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, AppState, Artifact, Command, ConfigKey, ConfigValue, EnvName};
use hoist_stores::file::FileStore;
use hoist_stores::snapshots::SnapshotDir;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn app() -> AppName {
    "api".parse().unwrap()
}

fn staging() -> EnvName {
    "staging".parse().unwrap()
}

/// The `n`th of a run of commands on `api`: deploys of ever new images and config changes,
/// after creating it.
fn nth(n: u64) -> Command {
    match n {
        0 => Command::CreateApp {
            pipeline: vec![staging(), "production".parse().unwrap()],
        },
        n if n % 3 == 0 => Command::SetConfig {
            env: staging(),
            values: [(
                "STEP".parse::<ConfigKey>().unwrap(),
                ConfigValue::Plain(n.to_string()),
            )]
            .into(),
        },
        n => Command::Deploy {
            env: staging(),
            artifact: Artifact::Image(
                format!("registry.example/api@sha256:{n:064x}")
                    .parse()
                    .unwrap(),
            ),
        },
    }
}

async fn run(store: &FileStore, snapshots: &dyn SnapshotStore, commands: std::ops::Range<u64>) {
    for n in commands {
        let ctx = CommandContext::new("ana@example.com".parse().unwrap());
        let (_, unsaved) = execute_snapshotted(store, snapshots, &app(), &nth(n), &ctx)
            .await
            .unwrap();
        assert_eq!(unsaved, None);
    }
}

fn releases_held(state: &AppState) -> usize {
    state.envs[&staging()].releases.len()
}

#[tokio::test]
async fn a_command_decides_from_the_snapshot_and_reads_back_an_old_release_it_rolls_back_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(&dir.path().join("log"), WAIT).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    run(&store, &snapshots, 0..200).await;
    assert!(snapshots.path(&app()).is_file(), "a snapshot was saved");

    let restored = restore(&store, &snapshots, &app()).await.unwrap();
    let full = load_app(&store, &app()).await.unwrap();
    assert!(restored.last_seq > 0, "the log confirms the snapshot");
    assert!(restored.last_seq <= full.last_seq);
    assert!(
        releases_held(&restored) <= 2,
        "a snapshot holds the current and last healthy releases, not {}",
        releases_held(&restored)
    );

    let back_to = hoist_engine::ReleaseVersion::new(3).unwrap();
    let rollback = Command::Rollback {
        env: staging(),
        to: Some(back_to),
    };
    let ctx = CommandContext::new("bo@example.com".parse().unwrap());
    let (executed, _) = execute_snapshotted(&store, &snapshots, &app(), &rollback, &ctx)
        .await
        .unwrap();
    let after = load_app(&store, &app()).await.unwrap();
    let staging_after = &after.envs[&staging()];
    let rolled = staging_after.current().unwrap();
    let old = staging_after.release(back_to).unwrap();
    assert_eq!(rolled.release.rollback_to, Some(back_to));
    assert_eq!(rolled.release.build, old.release.build);
    assert_eq!(rolled.release.config, old.release.config);
    assert_eq!(
        executed.state.envs[&staging()].current(),
        Some(rolled),
        "the state a command returns has the release it made"
    );
    assert_eq!(executed.state.last_seq, after.last_seq);
    assert_eq!(executed.state.last_hash, after.last_hash);
}

#[tokio::test]
async fn a_snapshot_past_the_logs_end_or_of_another_history_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    {
        let long = FileStore::open(&dir.path().join("long"), WAIT).unwrap();
        run(&long, &snapshots, 0..150).await;
    }
    let saved = snapshots.load(&app()).expect("a snapshot of the long log");

    // A shorter log of the same app: the snapshot's sequence is past its end.
    let short = FileStore::open(&dir.path().join("short"), WAIT).unwrap();
    run(&short, &NoSnapshots, 0..20).await;
    assert_eq!(
        restore(&short, &snapshots, &app()).await.unwrap(),
        AppState::default()
    );
    // And commands on it decide from its own history.
    run(&short, &snapshots, 20..25).await;
    let state = load_app(&short, &app()).await.unwrap();
    assert_eq!(state.envs[&staging()].release_count(), 25 - 1);

    // A log as long, of another history: the entry at the snapshot's sequence ends otherwise.
    let other = FileStore::open(&dir.path().join("other"), WAIT).unwrap();
    run(&other, &NoSnapshots, 0..150).await;
    snapshots.save(&app(), &saved).unwrap();
    assert!(other.last_seq().await.unwrap() >= 150);
    assert_eq!(
        restore(&other, &snapshots, &app()).await.unwrap(),
        AppState::default()
    );
}

#[tokio::test]
async fn a_damaged_or_torn_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(&dir.path().join("log"), WAIT).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    run(&store, &snapshots, 0..100).await;
    let path = snapshots.path(&app());
    let bytes = std::fs::read(&path).unwrap();
    assert_ne!(
        restore(&store, &snapshots, &app()).await.unwrap(),
        AppState::default()
    );

    // Torn (a write cut short), then one byte flipped, then not a snapshot at all.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 0x20;
    for damaged in [bytes[..bytes.len() / 2].to_vec(), flipped, b"{}".to_vec()] {
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(
            restore(&store, &snapshots, &app()).await.unwrap(),
            AppState::default()
        );
        // A command still works, and saves a good snapshot again once it has folded enough.
        run(&store, &snapshots, 100..101).await;
    }
    let full = load_app(&store, &app()).await.unwrap();
    assert_eq!(full.envs[&staging()].release_count(), 103 - 1);
}
