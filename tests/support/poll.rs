//! Waiting for a condition with a deadline: the one place the tests' synchronous waits pause
//! between looks.

use std::time::{Duration, Instant};

/// Looks at `condition` until it gives a value, or `deadline` passes (then `None`). Pauses
/// between looks start at 1 ms and double, up to `max_pause`.
pub fn poll<T>(
    deadline: Duration,
    max_pause: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Option<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        pause = pause.min(max_pause);
        std::thread::sleep(pause);
        pause *= 2;
    }
}

/// [`poll`] for a condition that must be awaited (a browser's page, an async client): the
/// same doubling pauses, on the async runtime's clock.
pub async fn poll_async<T, F: std::future::Future<Output = Option<T>>>(
    deadline: Duration,
    max_pause: Duration,
    mut condition: impl FnMut() -> F,
) -> Option<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = condition().await {
            return Some(value);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        pause = pause.min(max_pause);
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}
