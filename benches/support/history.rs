//! The history both criterion benches write: the `n`-th command of an app — its creation, then
//! deploys and config changes in turn.

use hoist_engine::{Artifact, Command, ConfigKey, ConfigValue, EnvName};

pub fn command(n: u64, create: bool, repo: &str) -> Command {
    let staging: EnvName = "staging".parse().unwrap();
    if create {
        Command::CreateApp {
            pipeline: vec![staging, "production".parse().unwrap()],
        }
    } else if n.is_multiple_of(2) {
        Command::Deploy {
            env: staging,
            artifact: Artifact::Image(
                format!("registry.example/{repo}@sha256:{n:064x}")
                    .parse()
                    .unwrap(),
            ),
        }
    } else {
        Command::SetConfig {
            env: staging,
            values: [(
                format!("KEY_{}", n % 5).parse::<ConfigKey>().unwrap(),
                ConfigValue::Plain(format!("value-{n}")),
            )]
            .into(),
        }
    }
}

/// The replay bench of both backends: fresh read models catching up with the whole log.
pub fn bench_catch_up<S: hoist_engine::store::EventStore>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    store: &S,
) {
    use hoist_projections::store::{ProjectionStore, PARTITION_SIZE};
    use hoist_stores::models::SledModels;
    g.bench_function("catch-up into fresh read models", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |models_dir| {
                let sled = SledModels::open(models_dir.path()).unwrap();
                let mut models = ProjectionStore::new(Box::new(sled), PARTITION_SIZE).unwrap();
                rt.block_on(models.catch_up(store, &mut |_, _| {})).unwrap();
                drop(models);
                models_dir
            },
            criterion::BatchSize::PerIteration,
        )
    });
}
