//! Delivering hooks inside `serve` (issue 11). One task per hook, started by [`supervise`] once
//! this instance holds the hook (`Journals::hold`: a file lock, or a NATS claim), so a slow or
//! dead endpoint holds up only its own hook, and two instances never send the same delivery
//! (except across a crash, with the same id).
//!
//! A hook's task follows the log from where its journal says every delivery was final
//! (`done_through`, at least the hook's own sequence), keeps one queue per app (in log order:
//! an app's next delivery waits for the one before it to succeed or fail for good), and records
//! every attempt in the journal after it is made. Killed between a send and its record, the
//! attempt is made again on restart: at least once, under the same `webhook-id`.

use crate::error::{Error, Result};
use crate::hooks::{delivery_of, notification, wait_until, ATTEMPT_TIMEOUT};
use crate::store::OpenMode;
use crate::Hoist;
use chrono::Utc;
use hoist_adapters::notify::{Endpoint, Notification, Sender};
use hoist_engine::hooks::{
    default_schedule, done_through, next_step, Answered, Attempt, Delivery, DeliveryState, Hook,
    Step,
};
use hoist_engine::store::EventStore;
use hoist_engine::{AccessCommand, AppName, Principal};
use hoist_stores::journal::{Hold, Journals};
use hoist_stores::AnyStore;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// How often a held hook is renewed (its NATS claim outlives a renewal by three times this).
const RENEW: Duration = Duration::from_secs(5);
/// How often a delivering hook is looked up again (removed, disabled, redelivery asked).
const REFRESH: Duration = Duration::from_secs(1);

/// Delivery settings: `serve.toml`'s `[hooks]`.
#[derive(Debug, Clone)]
pub struct HookSettings {
    /// The waits before attempts 1, 2, …: the Standard Webhooks schedule unless set.
    pub schedule: Vec<Duration>,
    /// How often the log and the hooks are looked at.
    pub poll: Duration,
    /// Test hook: stop forever right after a send, before recording it, having written the
    /// delivery's id to this file (the crash tests kill `serve` there).
    pub pause_after_send: Option<PathBuf>,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            schedule: default_schedule(),
            poll: Duration::from_millis(100),
            pause_after_send: None,
        }
    }
}

/// Starts a delivery task for every hook this instance can hold, until `stop` turns true; then
/// waits for them to finish their attempt in flight.
pub(crate) async fn supervise(
    hoist: Hoist,
    principal: Principal,
    settings: HookSettings,
    mut stop: watch::Receiver<bool>,
) {
    let journals = loop {
        match hoist.journals().await {
            Ok(journals) => break journals,
            Err(e) => tracing::warn!(error = e.message(), "hooks: opening the journals"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll.max(Duration::from_secs(1))) => {}
            _ = stop.changed() => return,
        }
    };
    let mut running: HashMap<Uuid, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        running.retain(|_, task| !task.is_finished());
        match hoist.hooks_in_force().await {
            Ok(hooks) => {
                for hook in hooks {
                    if hook.disabled.is_some() || running.contains_key(&hook.id) {
                        continue;
                    }
                    match journals.hold(hook.id).await {
                        Ok(Some(hold)) => {
                            let worker = Worker {
                                hoist: hoist.clone(),
                                principal: principal.clone(),
                                journals: journals.clone(),
                                settings: settings.clone(),
                                stop: stop.clone(),
                                sender: Sender::new(ATTEMPT_TIMEOUT),
                            };
                            let id = hook.id;
                            running.insert(id, tokio::spawn(worker.run(hook, hold)));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(hook = %hook.spec.name, error = %e, "hooks: holding")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = e.message(), "hooks: reading the access chain"),
        }
        // New hooks are looked for every second (on NATS, each look is a connection).
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

struct Worker {
    hoist: Hoist,
    principal: Principal,
    journals: Journals,
    settings: HookSettings,
    stop: watch::Receiver<bool>,
    sender: Sender,
}

/// A delivery waiting its turn, with what it says.
struct Queued {
    delivery: Delivery,
    notification: Notification,
}

/// One hook's deliveries in this instance.
struct Book {
    /// The deliveries the journal tells of, by id (their state and attempts).
    known: HashMap<Uuid, Delivery>,
    /// Per app, the deliveries not final yet, in log order.
    queues: BTreeMap<AppName, VecDeque<Queued>>,
    /// The log was read through this sequence.
    read_through: u64,
    /// Redelivery requests answered (their sequences).
    redelivered: BTreeSet<u64>,
}

impl Book {
    /// Takes in where `delivery` stands after an attempt: at the head of its app's queue, it
    /// leaves the queue once final (the app's next delivery's turn), else waits there.
    fn settle(&mut self, delivery: Delivery) {
        if let Some(queue) = self.queues.get_mut(&delivery.app) {
            if queue.front().is_some_and(|q| q.delivery.id == delivery.id) {
                if delivery.state.is_final() {
                    queue.pop_front();
                } else if let Some(head) = queue.front_mut() {
                    head.delivery = delivery.clone();
                }
            }
        }
        self.known.insert(delivery.id, delivery);
    }

    /// Every delivery up to this sequence is final.
    fn done_through(&self) -> u64 {
        self.queues
            .values()
            .filter_map(|q| q.front())
            .map(|q| q.delivery.seq - 1)
            .min()
            .unwrap_or(self.read_through)
    }
}

impl Worker {
    async fn run(mut self, hook: Hook, mut hold: Hold) {
        let name = hook.spec.name.clone();
        tracing::info!(hook = %name, format = %hook.spec.format, "delivering");
        if let Err(e) = self.deliver(hook, &mut hold).await {
            tracing::warn!(hook = %name, error = e.message(), "hooks: delivery stopped; taken up again shortly");
        }
        self.journals.release(hold).await;
    }

    async fn deliver(&mut self, mut hook: Hook, hold: &mut Hold) -> Result<()> {
        let mut endpoint = self.hoist.endpoint_at(&hook, Utc::now())?;
        let attempts = self
            .journals
            .read(hook.id)
            .await
            .map_err(Error::unavailable)?;
        let mut book = Book {
            known: Delivery::fold(&attempts)
                .into_iter()
                .map(|d| (d.id, d))
                .collect(),
            queues: BTreeMap::new(),
            read_through: done_through(&attempts).max(hook.added_seq),
            redelivered: attempts.iter().filter_map(|a| a.redelivery).collect(),
        };
        let mut log: Option<AnyStore> = None;
        let mut renewed = tokio::time::Instant::now();
        let mut refreshed = tokio::time::Instant::now();
        loop {
            if *self.stop.borrow() {
                return Ok(());
            }
            if renewed.elapsed() >= RENEW {
                self.journals
                    .renew(hold)
                    .await
                    .map_err(Error::unavailable)?;
                renewed = tokio::time::Instant::now();
            }
            // Removed or disabled: no more deliveries (one in flight was finished). Looked at
            // every second (on NATS, each look is a connection).
            if refreshed.elapsed() >= REFRESH {
                refreshed = tokio::time::Instant::now();
                let current = self.hoist.hooks_in_force().await?;
                match current.into_iter().find(|h| h.id == hook.id) {
                    Some(now) if now.disabled.is_none() => {
                        hook = now;
                        // A rotation, or the end of the previous secret's time.
                        endpoint = self.hoist.endpoint_at(&hook, Utc::now())?;
                    }
                    _ => {
                        tracing::info!(hook = %hook.spec.name, "removed or disabled: no more deliveries");
                        return Ok(());
                    }
                }
            }
            self.read_new(&hook, &mut book, &mut log).await?;
            self.redeliver(&hook, &endpoint, &mut book, &mut log)
                .await?;
            let mut next_due: Option<chrono::DateTime<Utc>> = None;
            let apps: Vec<AppName> = book.queues.keys().cloned().collect();
            for app in apps {
                if *self.stop.borrow() {
                    return Ok(());
                }
                // Each app's head, while it is due and ends (succeeds or fails for good).
                while let Some(head) = book.queues.get(&app).and_then(|q| q.front()) {
                    let now = Utc::now();
                    if let Some(at) = head.delivery.next_attempt_at.filter(|at| *at > now) {
                        next_due = Some(next_due.map_or(at, |n| n.min(at)));
                        break;
                    }
                    let delivery = head.delivery.clone();
                    let notification = head.notification.clone();
                    let (delivery, disable) = self
                        .attempt(&hook, &endpoint, &book, delivery, &notification, None)
                        .await?;
                    book.settle(delivery);
                    if disable {
                        self.disable(&hook).await;
                        return Ok(());
                    }
                }
            }
            book.queues.retain(|_, q| !q.is_empty());
            let wait = wait_until(next_due, Utc::now())
                .min(self.settings.poll)
                .max(Duration::from_millis(10));
            let wait = if next_due.is_none() {
                self.settings.poll
            } else {
                wait
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.changed() => return Ok(()),
            }
        }
    }

    /// The log, opened: kept open on NATS (a connection), reopened every pass on the embedded
    /// store (so that other processes get their turn with it).
    async fn log<'a>(&self, log: &'a mut Option<AnyStore>) -> Result<&'a AnyStore> {
        if log.is_none() {
            *log = Some(self.hoist.open_log(OpenMode::Create).await?);
        }
        Ok(log.as_ref().expect("just opened"))
    }

    fn let_go(log: &mut Option<AnyStore>) {
        if matches!(log, Some(AnyStore::Embedded(_))) {
            *log = None;
        }
    }

    /// Queues the deliveries of the commits appended since the last look.
    async fn read_new(
        &self,
        hook: &Hook,
        book: &mut Book,
        log: &mut Option<AnyStore>,
    ) -> Result<()> {
        if let Some(head) = self.hoist.settled_head() {
            if head <= book.read_through {
                return Ok(());
            }
        }
        let store = self.log(log).await?;
        let read = async {
            if store.last_seq().await? <= book.read_through {
                return Ok(Vec::new());
            }
            crate::hooks::read_after(store, book.read_through + 1).await
        }
        .await;
        Self::let_go(log);
        for recorded in read? {
            book.read_through = book.read_through.max(recorded.seq);
            let Some(mut delivery) = delivery_of(&hook.spec, &recorded) else {
                continue;
            };
            if let Some(known) = book.known.get(&delivery.id) {
                if known.state.is_final() {
                    continue;
                }
                delivery = known.clone();
            }
            let Some(notification) = notification(&recorded) else {
                continue;
            };
            book.queues
                .entry(delivery.app.clone())
                .or_default()
                .push_back(Queued {
                    delivery,
                    notification,
                });
        }
        Ok(())
    }

    /// Answers `hooks redeliver` requests: one attempt now for each, whatever its state.
    async fn redeliver(
        &mut self,
        hook: &Hook,
        endpoint: &Endpoint,
        book: &mut Book,
        log: &mut Option<AnyStore>,
    ) -> Result<()> {
        let asked: Vec<(Uuid, u64)> = hook
            .redeliveries
            .iter()
            .filter(|(_, seq)| !book.redelivered.contains(seq))
            .copied()
            .collect();
        for (id, request) in asked {
            let queued = book
                .queues
                .values()
                .flatten()
                .find(|q| q.delivery.id == id)
                .map(|q| (q.delivery.clone(), q.notification.clone()));
            let found = match queued {
                Some(found) => Some(found),
                None => self.find(hook, book, id, log).await?,
            };
            let Some((delivery, notification)) = found else {
                // Not a delivery of this hook (anymore): nothing to send.
                book.redelivered.insert(request);
                continue;
            };
            let (delivery, disable) = self
                .attempt(hook, endpoint, book, delivery, &notification, Some(request))
                .await?;
            book.redelivered.insert(request);
            book.settle(delivery);
            if disable {
                self.disable(hook).await;
            }
        }
        Ok(())
    }

    /// A delivery the journal knows, with its event read back from the log.
    async fn find(
        &self,
        hook: &Hook,
        book: &Book,
        id: Uuid,
        log: &mut Option<AnyStore>,
    ) -> Result<Option<(Delivery, Notification)>> {
        let Some(known) = book.known.get(&id).cloned() else {
            return Ok(None);
        };
        let store = self.log(log).await?;
        let page = store.read_from(known.seq, 1).await;
        Self::let_go(log);
        let events = hoist_engine::service::decode_commits(&page?)?;
        Ok(events
            .iter()
            .filter(|r| r.envelope.id == id && delivery_of(&hook.spec, r).is_some())
            .find_map(notification)
            .map(|n| (known, n)))
    }

    /// One attempt, recorded; returns the delivery after it, and whether the hook is to be
    /// disabled (410 Gone).
    async fn attempt(
        &self,
        hook: &Hook,
        endpoint: &Endpoint,
        book: &Book,
        mut delivery: Delivery,
        notification: &Notification,
        redelivery: Option<u64>,
    ) -> Result<(Delivery, bool)> {
        let now = Utc::now();
        let answered = match self.sender.deliver(endpoint, notification, now).await {
            Ok(answered) => answered,
            Err(e) => Answered::Transport(e.to_string()),
        };
        if let Some(marker) = &self.settings.pause_after_send {
            let _ = std::fs::write(marker, delivery.id.to_string());
            std::future::pending::<()>().await;
        }
        let number = delivery.attempts + 1;
        let step = next_step(&answered, number, Utc::now(), &self.settings.schedule);
        let (state, next_attempt_at) = match step {
            Step::Succeeded => (DeliveryState::Succeeded, None),
            Step::RetryAt(at) => (DeliveryState::Retrying, Some(at)),
            Step::Failed | Step::Disable => (DeliveryState::Failed, None),
        };
        let (status, error) = match &answered {
            Answered::Status {
                status, excerpt, ..
            } => (
                Some(*status),
                (!(200..300).contains(status)).then(|| format!("HTTP {status}: {excerpt}")),
            ),
            Answered::Transport(e) => (None, Some(e.clone())),
        };
        let outcome = match state {
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            _ => "retrying",
        };
        metrics::counter!("hoist_deliveries_total", "format" => hook.spec.format.as_str(), "outcome" => outcome).increment(1);
        tracing::info!(
            hook = %hook.spec.name, delivery = %delivery.id, seq = delivery.seq, attempt = number,
            status = status, outcome, error = error.as_deref().map(|e| crate::text::escape(e).into_owned()),
            "delivery attempt"
        );
        let mut after = book.done_through_after(&delivery, state);
        if redelivery.is_some() {
            after = book.done_through();
        }
        let attempt = Attempt {
            delivery: delivery.id,
            seq: delivery.seq,
            app: delivery.app.clone(),
            env: delivery.env.clone(),
            kind: delivery.kind.clone(),
            attempt: number,
            at: now,
            status,
            error,
            state,
            next_attempt_at,
            done_through: after,
            redelivery,
        };
        if let Err(e) = self.journals.append(hook.id, &attempt).await {
            // Unrecorded, the attempt is made again after a restart (at least once); the disk
            // or the stream coming back is what it waits for.
            tracing::warn!(hook = %hook.spec.name, error = %e, "hooks: recording an attempt");
        }
        delivery.apply(&attempt);
        Ok((delivery, step == Step::Disable))
    }

    async fn disable(&self, hook: &Hook) {
        let caller = crate::Caller {
            principal: self.principal.clone(),
            actor: "hoist".parse().expect("a valid actor"),
            via: None,
            command_id: None,
        };
        let command = AccessCommand::DisableHook {
            name: hook.spec.name.clone(),
            reason: "the endpoint answered 410 Gone".into(),
        };
        match self.hoist.access_execute(&caller, command).await {
            Ok(_) => tracing::warn!(hook = %hook.spec.name, "hooks: disabled (410 Gone)"),
            Err(e) => {
                tracing::warn!(hook = %hook.spec.name, error = e.message(), "hooks: disabling")
            }
        }
    }
}

impl Book {
    /// `done_through` once `delivery` is in `state`: when it is the only head holding the
    /// frontier back and it ends, the frontier moves past it (to the app's next delivery, or to
    /// what was read).
    fn done_through_after(&self, delivery: &Delivery, state: DeliveryState) -> u64 {
        if !state.is_final() {
            return self.done_through();
        }
        self.queues
            .values()
            .filter_map(|q| {
                let mut heads = q.iter().filter(|x| x.delivery.id != delivery.id);
                heads.next().map(|q| q.delivery.seq - 1)
            })
            .min()
            .unwrap_or(self.read_through)
    }
}
