//! The realistic history `hoist bench` and the criterion benches write: per app, its creation,
//! then a mix of deploys, config changes, promotions, rollbacks, locks and unlocks, by three
//! actors, drawn from a seeded generator (the same seed, the same history).

use hoist_engine::{
    Actor, AppState, Artifact, Command, ConfigKey, ConfigValue, EnvName, ValidationError,
};

/// A seeded stream of commands. One per worker: each call looks at the app's state, so a
/// locked production, a first deploy or a rollback with nothing to go back to come out right.
pub struct Workload {
    rng: u64,
    step: u64,
    staging: EnvName,
    production: EnvName,
    actors: [Actor; 3],
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        let name = |text: &str| text.parse().expect("a valid name");
        Workload {
            rng: 0x9E37_79B9_7F4A_7C15u64 ^ (seed + 1),
            step: 0,
            staging: name("staging"),
            production: name("production"),
            actors: [
                "ana@example.com".parse().expect("a valid actor"),
                "bo@example.com".parse().expect("a valid actor"),
                "bench@hoist.local".parse().expect("a valid actor"),
            ],
        }
    }

    /// The next command for an app now in `state`, and who issues it. About 35% deploys, 25%
    /// config changes, 20% promotions, 15% rollbacks, 5% locks and unlocks; a locked production
    /// rejects promotions and config changes there, as it would in a real history.
    pub fn next(&mut self, state: &AppState) -> Result<(Command, Actor), ValidationError> {
        self.step += 1;
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (rng, step, roll) = (self.rng, self.step, self.rng % 100);
        let (staging, production) = (&self.staging, &self.production);
        let has = |env: &EnvName, n: u64| state.env(env).is_some_and(|e| e.release_count() >= n);
        let command = if !state.exists() {
            Command::CreateApp {
                pipeline: vec![staging.clone(), production.clone()],
            }
        } else if roll < 35 || !has(staging, 1) {
            Command::Deploy {
                env: staging.clone(),
                artifact: Artifact::Image(
                    format!("registry.example/bench@sha256:{rng:064x}").parse()?,
                ),
            }
        } else if roll < 60 {
            let env = if roll.is_multiple_of(2) {
                staging
            } else {
                production
            };
            Command::SetConfig {
                env: env.clone(),
                values: [(
                    format!("KEY_{}", roll % 5).parse::<ConfigKey>()?,
                    ConfigValue::Plain(format!("value-{step}")),
                )]
                .into(),
            }
        } else if roll < 80 && state.env(production).is_some_and(|e| e.pin.is_some()) {
            // A rollback pinned production (issue 16): the team lifts the pin to promote again.
            Command::Unpin {
                env: production.clone(),
            }
        } else if roll < 80 {
            Command::Promote {
                from: staging.clone(),
                to: None,
            }
        } else if roll < 95 && has(production, 2) {
            Command::Rollback {
                env: production.clone(),
                to: None,
            }
        } else if state.env(production).is_some_and(|e| e.lock.is_some()) {
            Command::Unlock {
                env: production.clone(),
            }
        } else {
            Command::Lock {
                env: production.clone(),
                reason: "bench freeze".into(),
            }
        };
        let actor = self.actors[(roll % 3) as usize].clone();
        Ok((command, actor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_engine::decide;

    /// Every command the workload draws for an app it has been driving is one the engine
    /// accepts, but for the rejections a locked production gives; and it draws every kind.
    #[test]
    fn the_workload_drives_an_app_through_every_command_kind() {
        let app = "web".parse().unwrap();
        let mut workload = Workload::new(7);
        let mut state = AppState::default();
        let mut kinds = std::collections::BTreeSet::new();
        for seq in 1..=2_000u64 {
            let (command, actor) = workload.next(&state).unwrap();
            let kind = format!("{command:?}");
            kinds.insert(kind.split([' ', '{']).next().unwrap().to_string());
            match decide(&app, &state, &command) {
                Ok(events) => {
                    for event in events {
                        let envelope = hoist_engine::Envelope {
                            id: uuid::Uuid::now_v7(),
                            app: app.clone(),
                            at: chrono::Utc::now(),
                            actor: actor.clone(),
                            via: None,
                            correlation_id: uuid::Uuid::now_v7(),
                            causation_id: None,
                            prev_hash: None,
                            event: Some(event),
                        };
                        state.apply_mut(&hoist_engine::Recorded {
                            seq,
                            hash: hoist_engine::EventHash::of(b""),
                            envelope,
                        });
                    }
                }
                Err(e) => assert!(
                    state
                        .env(&"production".parse().unwrap())
                        .is_some_and(|p| p.lock.is_some()),
                    "{command:?} rejected with production unlocked: {e}"
                ),
            }
        }
        for kind in [
            "CreateApp",
            "Deploy",
            "SetConfig",
            "Promote",
            "Rollback",
            "Lock",
            "Unlock",
        ] {
            assert!(kinds.contains(kind), "{kind} never drawn: {kinds:?}");
        }
    }
}
