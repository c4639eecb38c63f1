//! The per-app hash chain: a log written by `service::execute` verifies, and an edited, removed
//! or reordered event is caught at the first link it breaks, named by app, log seq and event id.

use hoist_engine::chain::{BrokenLink, ChainVerifier};
use hoist_engine::codec::{decode_commit, encode_envelope};
use hoist_engine::service::{decode_commits, execute, CommandContext};
use hoist_engine::store::EventStore;
use hoist_engine::{
    AppName, Artifact, Command, ConfigValue, EnvName, Event, EventHash, Recorded, ReleaseVersion,
};
use hoist_stores::file::FileStore;
use std::time::Duration;

fn name<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// The whole log of two apps whose commands interleave, as `execute` wrote it to a sled store.
async fn history() -> Vec<Recorded> {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), Duration::from_secs(30)).unwrap();
    let staging: EnvName = name("staging");
    let image = |hex: char| {
        name(&format!(
            "registry.example/api@sha256:{}",
            hex.to_string().repeat(64)
        ))
    };
    let commands = [
        Command::CreateApp {
            pipeline: vec![staging.clone(), name("production")],
        },
        Command::Deploy {
            env: staging.clone(),
            artifact: Artifact::Image(image('a')),
        },
        Command::SetConfig {
            env: staging.clone(),
            values: [(name("A"), ConfigValue::Plain("1".into()))].into(),
        },
        Command::Deploy {
            env: staging.clone(),
            artifact: Artifact::Image(image('b')),
        },
        Command::Promote {
            from: staging.clone(),
            to: None,
        },
        Command::Lock {
            env: name("production"),
            reason: "freeze".into(),
        },
        Command::Rollback {
            env: staging.clone(),
            to: Some(ReleaseVersion::FIRST),
        },
    ];
    for command in &commands {
        for app in ["api", "web"] {
            let ctx = CommandContext::new(name("ana@example.com"));
            execute(&store, &name(app), command, &ctx).await.unwrap();
        }
    }
    decode_commits(&store.read_from(1, usize::MAX).await.unwrap()).unwrap()
}

fn verify(log: &[Recorded]) -> Result<ChainVerifier, BrokenLink> {
    let mut verifier = ChainVerifier::default();
    for recorded in log {
        verifier.check(recorded)?;
    }
    Ok(verifier)
}

/// `recorded` after changing its envelope, as the log would give it back: re-encoded, re-hashed.
fn rewritten(recorded: &Recorded, edit: impl FnOnce(&mut hoist_engine::Envelope)) -> Recorded {
    let mut envelope = recorded.envelope.clone();
    edit(&mut envelope);
    let payload = hoist_proto::join_commit(&[encode_envelope(&envelope)]);
    decode_commit(recorded.seq, &payload).unwrap().remove(0)
}

/// Positions in the log of `app`'s events.
fn positions(log: &[Recorded], app: &str) -> Vec<usize> {
    (0..log.len())
        .filter(|&i| log[i].envelope.app.as_str() == app)
        .collect()
}

/// Asserts `broken` names `event`, and the rule it broke.
fn assert_names(broken: &BrokenLink, event: &Recorded, rule: &str) {
    assert_eq!(
        (&broken.app, broken.seq, broken.event_id),
        (&event.envelope.app, event.seq, event.envelope.id),
        "{broken}"
    );
    assert!(broken.rule.contains(rule), "{broken}");
    let message = broken.to_string();
    assert!(
        message.contains(event.envelope.app.as_str())
            && message.contains(&event.seq.to_string())
            && message.contains(&event.envelope.id.to_string()),
        "the message names app, seq and event id: {message}"
    );
}

const NOT_PREVIOUS: &str = "its previous hash is not the hash of the app's previous event";

#[tokio::test]
async fn a_history_written_by_execute_verifies() {
    let log = history().await;
    // Seven commands on each of two apps; the rollback also pins its env (issue 16).
    assert_eq!(log.len(), 16, "eight events on each of two apps");
    let verifier = verify(&log).unwrap();
    assert_eq!(verifier.checked, 16);
    for app in ["api", "web"] {
        let last = &log[*positions(&log, app).last().unwrap()];
        assert_eq!(
            verifier.head(&name::<AppName>(app)),
            Some(last.hash),
            "{app}'s head"
        );
    }
}

#[tokio::test]
async fn a_wrong_prev_hash_is_named() {
    let mut log = history().await;
    let at = positions(&log, "api")[3];
    log[at] = rewritten(&log[at], |e| e.prev_hash = Some(EventHash([0; 32])));
    assert_names(&verify(&log).unwrap_err(), &log[at], NOT_PREVIOUS);
}

#[tokio::test]
async fn a_missing_prev_hash_on_a_later_event_is_named() {
    let mut log = history().await;
    let at = positions(&log, "web")[2];
    log[at] = rewritten(&log[at], |e| e.prev_hash = None);
    assert_names(
        &verify(&log).unwrap_err(),
        &log[at],
        "names no previous hash",
    );
}

#[tokio::test]
async fn an_edited_event_breaks_the_link_after_it() {
    let mut log = history().await;
    let api = positions(&log, "api");
    log[api[2]] = rewritten(&log[api[2]], |e| {
        let Some(Event::ReleaseCreated { release, .. }) = &mut e.event else {
            panic!("a release: {e:?}")
        };
        release
            .config
            .insert(name("A"), ConfigValue::Plain("tampered".into()));
    });
    // The edited event still names its predecessor; its successor no longer names it.
    assert_names(&verify(&log).unwrap_err(), &log[api[3]], NOT_PREVIOUS);
}

#[tokio::test]
async fn a_removed_event_is_named_by_the_one_after_it() {
    let mut log = history().await;
    let api = positions(&log, "api");
    let next = log[api[4]].clone();
    log.remove(api[3]);
    assert_names(&verify(&log).unwrap_err(), &next, NOT_PREVIOUS);
}

#[tokio::test]
async fn a_removed_first_event_is_named_by_the_new_first() {
    let mut log = history().await;
    let web = positions(&log, "web");
    let next = log[web[1]].clone();
    log.remove(web[0]);
    assert_names(
        &verify(&log).unwrap_err(),
        &next,
        "first event must not name a previous hash",
    );
}

#[tokio::test]
async fn two_swapped_events_are_named_at_the_first_of_them() {
    let mut log = history().await;
    let api = positions(&log, "api");
    log.swap(api[2], api[3]);
    // The later event, now first in the log, names a predecessor that has not been seen yet.
    assert_names(&verify(&log).unwrap_err(), &log[api[2]], NOT_PREVIOUS);
}

#[tokio::test]
async fn every_event_before_the_first_break_verifies_whatever_its_app() {
    let mut log = history().await;
    let api = positions(&log, "api");
    let next = log[api[6]].envelope.id;
    log.remove(api[5]);
    let mut verifier = ChainVerifier::default();
    let broken = log.iter().position(|r| verifier.check(r).is_err()).unwrap();
    assert_eq!(
        log[broken].envelope.id, next,
        "api's event after the removed one"
    );
    assert_eq!(verifier.checked, broken as u64);
    assert!(
        positions(&log[..broken], "web").len() > 5,
        "web's events on both sides of the removed one verified"
    );
}
