//! The history both criterion benches write: `hoist bench`'s workload
//! (`hoist_control::workload`: deploys, config changes, promotions, rollbacks, locks), through
//! the real command path.

use hoist_control::workload::Workload;
use hoist_engine::service::{execute_cached, CommandContext, ExecuteError};
use hoist_engine::store::EventStore;
use hoist_engine::{AppName, AppState};

/// One app being written: its state, and its own seeded workload.
pub struct Writer {
    app: AppName,
    state: AppState,
    workload: Workload,
}

impl Writer {
    pub fn new(app: AppName, seed: u64) -> Self {
        Writer {
            app,
            state: AppState::default(),
            workload: Workload::new(seed),
        }
    }

    /// Appends the app's next commit (drawing again past what a locked env rejects).
    pub async fn commit<S: EventStore>(&mut self, store: &S) {
        loop {
            let (command, actor) = self.workload.next(&self.state).unwrap();
            let ctx = CommandContext::new(actor);
            match execute_cached(store, &self.app, &command, &ctx, &mut self.state).await {
                Ok(events) if !events.is_empty() => return,
                Ok(_) | Err(ExecuteError::Domain(_)) => {}
                Err(e) => panic!("{}: {e}", self.app),
            }
        }
    }
}

/// The replay bench of both backends: fresh read models catching up with the whole log.
pub fn bench_catch_up<S: hoist_engine::store::EventStore>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    store: &S,
) {
    use hoist_projections::store::{ProjectionStore, Sizes};
    use hoist_stores::models::SledModels;
    g.bench_function("catch-up into fresh read models", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |models_dir| {
                let sled = SledModels::open(models_dir.path()).unwrap();
                let mut models = ProjectionStore::new(Box::new(sled), Sizes::DEFAULT).unwrap();
                rt.block_on(models.catch_up(store, &mut |_, _| {})).unwrap();
                drop(models);
                models_dir
            },
            criterion::BatchSize::PerIteration,
        )
    });
}
