//! `hoist envs target` and `hoist envs policy`: where an env's releases are applied, and whether a
//! failed rollout rolls back by itself. Both are events, audited like every other change.

use crate::cli::EnvsCommand;
use crate::commands::Ctx;
use crate::error::CliError;
use crate::output::{escape, outln, print_json};
use hoist_engine::{Command as DomainCommand, Target};

pub async fn run(ctx: &Ctx, command: EnvsCommand) -> Result<(), CliError> {
    match command {
        EnvsCommand::Target {
            target: env_args,
            kube,
            context,
            namespace,
            manifests,
            exec,
            exec_env,
            none,
        } => {
            let (app, env) = env_args.parse()?;
            let target = match (kube, manifests, exec, none) {
                (true, None, None, false) => Target::Kube {
                    context,
                    namespace: namespace.unwrap_or_else(|| env.to_string()),
                },
                (false, Some(dir), None, false) => Target::Manifests {
                    // Stored absolute: `serve` may run from another directory.
                    dir: std::path::absolute(&dir)
                        .map_err(|e| {
                            CliError::rejected(format!("--manifests {}: {e}", dir.display()))
                        })?
                        .display()
                        .to_string(),
                },
                (false, None, Some(command), false) => Target::Exec {
                    command,
                    pass_env: exec_env
                        .iter()
                        .map(|name| name.parse())
                        .collect::<Result<_, _>>()?,
                },
                (false, None, None, true) => Target::None,
                _ => unreachable!("clap requires exactly one target kind"),
            };
            let executed = ctx
                .mutate(
                    &app,
                    DomainCommand::SetTarget {
                        env: env.clone(),
                        target: target.clone(),
                    },
                )
                .await?;
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "app": app, "env": env, "target": target, "changed": !executed.events.is_empty(),
                }));
            } else if executed.events.is_empty() {
                outln!(
                    "Target of {app}/{env} was already {}",
                    escape(&target.to_string())
                );
            } else {
                outln!("Target of {app}/{env}: {}", escape(&target.to_string()));
            }
        }
        EnvsCommand::Policy {
            target,
            auto_rollback,
        } => {
            let (app, env) = target.parse()?;
            let on = auto_rollback == "on";
            let executed = ctx
                .mutate(
                    &app,
                    DomainCommand::SetPolicy {
                        env: env.clone(),
                        auto_rollback: on,
                    },
                )
                .await?;
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "app": app, "env": env, "auto_rollback": on, "changed": !executed.events.is_empty(),
                }));
            } else {
                outln!("Auto-rollback of {app}/{env}: {auto_rollback}");
            }
        }
    }
    Ok(())
}
