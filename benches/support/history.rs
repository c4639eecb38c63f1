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
