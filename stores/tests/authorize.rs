//! Every command `service::execute` runs is authorized before it is decided: a principal without
//! the permission is refused with `Denied` and nothing is appended; the store's owner, every
//! command's principal today, and an identity with the right grant go through.

use hoist_engine::authorize::{Grant, Role};
use hoist_engine::service::{execute, CommandContext, ExecuteError};
use hoist_engine::store::EventStore;
use hoist_engine::{Action, AppName, Artifact, Command, EnvName, Principal};
use hoist_stores::file::FileStore;
use std::time::Duration;

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn env(name: &str) -> EnvName {
    name.parse().unwrap()
}

fn as_principal(principal: Principal) -> CommandContext {
    let mut ctx = CommandContext::new("ana@example.com".parse().unwrap());
    ctx.principal = principal;
    ctx
}

fn deployer_on(env_name: &str) -> Principal {
    Principal::Identity {
        name: "ana@example.com".parse().unwrap(),
        grants: vec![Grant {
            role: Role::Deployer,
            app: Some("api".parse().unwrap()),
            env: Some(env(env_name)),
        }],
    }
}

/// Commits in the log, read whole.
async fn commits(store: &FileStore) -> usize {
    store.read_from(1, usize::MAX).await.unwrap().len()
}

#[test]
fn execute_authorizes_before_deciding_and_appends_nothing_when_denied() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), Duration::from_secs(30)).unwrap();
        let app: AppName = "api".parse().unwrap();
        // Given an app created by the store's owner (the default principal),
        let create = Command::CreateApp {
            pipeline: vec![env("staging"), env("production")],
        };
        // (a context per command: its id is the append's idempotency key)
        let owner = || CommandContext::new("root@example.com".parse().unwrap());
        assert_eq!(owner().principal, Principal::Owner);
        execute(&store, &app, &create, &owner()).await.unwrap();
        let deploy = |to: &str| Command::Deploy {
            env: env(to),
            artifact: Artifact::Image(
                format!("registry.example/api@sha256:{}", "a".repeat(64))
                    .parse()
                    .unwrap(),
            ),
        };
        // and production locked by it,
        let lock = Command::Lock {
            env: env("production"),
            reason: "freeze".into(),
        };
        execute(&store, &app, &lock, &owner()).await.unwrap();
        let before = commits(&store).await;
        assert_eq!(before, 2);
        // when a deployer on staging deploys to production, then it is denied (before the lock
        // is even looked at: the permission comes first), naming the rule,
        let denied = execute(
            &store,
            &app,
            &deploy("production"),
            &as_principal(deployer_on("staging")),
        )
        .await
        .unwrap_err();
        match &denied {
            ExecuteError::Denied(d) => assert_eq!(d.action, Action::Deploy),
            other => panic!("expected Denied, got {other:?}"),
        }
        assert_eq!(
            denied.to_string(),
            "ana@example.com may not deploy on api/production: that needs the deployer role there"
        );
        // and nothing was appended;
        assert_eq!(commits(&store).await, before);
        // when it deploys to staging, then it releases.
        let executed = execute(
            &store,
            &app,
            &deploy("staging"),
            &as_principal(deployer_on("staging")),
        )
        .await
        .unwrap();
        assert_eq!(executed.state.envs[&env("staging")].releases.len(), 1);
        assert!(commits(&store).await > before);
    });
}
