//! Issue 14's commands behind `api::Request`: `ps` (the env's processes, their scale and, on a
//! kube target, their ready replicas), `ps scale` (an event through `execute`, authorized as a
//! deploy), and `domains add/remove/list` (a host routes to one app's env only: `decide` checks
//! the app's own envs, this checks every other app, which only control can see).

use crate::error::{Error, Result};
use crate::queries::env_of;
use crate::{Caller, Hoist};
use hoist_engine::{
    Action, AppName, Command, EnvName, Formation, Hostname, Principal, Scale, Scope,
};
use serde::Serialize;
use std::collections::BTreeSet;

/// One row of `ps --json`.
#[derive(Debug, Clone, Serialize)]
pub struct PsRow {
    #[serde(rename = "type")]
    pub process_type: String,
    /// `None`: the image's entrypoint.
    pub command: Option<String>,
    pub replicas: u32,
    /// Ready replicas on a kube target; `None` where the target cannot say.
    pub ready: Option<i32>,
}

/// `ps`: the env's processes as its current release runs them.
#[derive(Debug, Clone)]
pub struct Ps {
    pub app: AppName,
    pub env: EnvName,
    pub rows: Vec<PsRow>,
}

impl Hoist {
    /// The processes of `app`/`env`'s current release at the env's scale, with their ready
    /// replicas when the target is a cluster that answers.
    pub async fn ps(&self, principal: &Principal, app: &AppName, env: &EnvName) -> Result<Ps> {
        self.allowed(principal, Action::View, &Scope::env(app, env))?;
        let state = self.app(principal, app, None).await?;
        let env_state = env_of(app, &state, env)?;
        let record = env_state
            .current()
            .filter(|r| r.release.build.is_some())
            .ok_or_else(|| {
                Error::rejected(format!(
                    "{app}/{env} has no release yet: it runs no process"
                ))
            })?;
        let formation = env_state.formation(record);
        let ready = hoist_adapters::target::ready(&env_state.target, app, &formation).await;
        Ok(Ps {
            app: app.clone(),
            env: env.clone(),
            rows: rows(&formation, ready),
        })
    }

    /// `ps scale`: records the new counts (nothing when they are the env's already).
    pub async fn ps_scale(
        &self,
        caller: &Caller,
        app: &AppName,
        env: &EnvName,
        replicas: Scale,
    ) -> Result<Ps> {
        let command = Command::Scale {
            env: env.clone(),
            replicas,
        };
        let state = self.execute(caller, app, command).await?.state;
        let env_state = env_of(app, &state, env)?;
        let record = env_state.current().expect("scale needs a current release");
        Ok(Ps {
            app: app.clone(),
            env: env.clone(),
            rows: rows(&env_state.formation(record), None),
        })
    }

    /// `domains add`: refused when another app routes the host already.
    pub async fn domains_add(
        &self,
        caller: &Caller,
        app: &AppName,
        env: &EnvName,
        host: Hostname,
    ) -> Result<BTreeSet<Hostname>> {
        // Asked before the other apps are read: a caller who may not add it learns nothing.
        self.allowed(&caller.principal, Action::Deploy, &Scope::env(app, env))?;
        for (other, state) in self.apps(&Principal::Owner).await? {
            if &other == app {
                continue;
            }
            if state.envs.values().any(|e| e.domains.contains(&host)) {
                return Err(Error::rejected(format!(
                    "domain {host} is already routed to another app: remove it there first"
                )));
            }
        }
        let command = Command::AddDomain {
            env: env.clone(),
            host,
        };
        let state = self.execute(caller, app, command).await?.state;
        Ok(env_of(app, &state, env)?.domains.clone())
    }

    pub async fn domains_remove(
        &self,
        caller: &Caller,
        app: &AppName,
        env: &EnvName,
        host: Hostname,
    ) -> Result<BTreeSet<Hostname>> {
        let command = Command::RemoveDomain {
            env: env.clone(),
            host,
        };
        let state = self.execute(caller, app, command).await?.state;
        Ok(env_of(app, &state, env)?.domains.clone())
    }

    pub async fn domains_list(
        &self,
        principal: &Principal,
        app: &AppName,
        env: &EnvName,
    ) -> Result<BTreeSet<Hostname>> {
        self.allowed(principal, Action::View, &Scope::env(app, env))?;
        let state = self.app(principal, app, None).await?;
        Ok(env_of(app, &state, env)?.domains.clone())
    }
}

fn rows(formation: &Formation, ready: Option<Vec<i32>>) -> Vec<PsRow> {
    formation
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| PsRow {
            process_type: p.process_type.to_string(),
            command: p.command.clone(),
            replicas: p.replicas,
            ready: ready.as_ref().and_then(|r| r.get(i).copied()),
        })
        .collect()
}

/// The exec target's stdin: the release's JSON with what it runs in the env (`formation`: the
/// processes at the env's scale, `domains`, `release_command`).
pub(crate) fn exec_payload(view: &crate::views::ReleaseView, formation: &Formation) -> Vec<u8> {
    let mut json = serde_json::to_value(view).expect("views serialize");
    if let serde_json::Value::Object(map) = &mut json {
        let processes: Vec<_> = formation
            .processes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "type": p.process_type, "command": p.command, "replicas": p.replicas,
                })
            })
            .collect();
        map.insert("formation".into(), processes.into());
        map.insert(
            "domains".into(),
            serde_json::to_value(&formation.domains).expect("names serialize"),
        );
        map.insert(
            "release_command".into(),
            serde_json::to_value(&formation.release_command).expect("text serializes"),
        );
    }
    serde_json::to_vec(&json).expect("JSON serializes")
}

/// `ps`'s table and `ps scale`'s sentence.
pub mod human {
    use super::Ps;
    use crate::text::escape;

    pub fn ps(ps: &Ps) -> String {
        let mut out = format!("=== {}/{}\n", ps.app, ps.env);
        for row in &ps.rows {
            let ready = row.ready.map_or(String::new(), |r| format!(", {r} ready"));
            let command = row
                .command
                .as_deref()
                .map_or("(image entrypoint)".to_string(), |c| escape(c).into_owned());
            out.push_str(&format!(
                "{}: {} replica{}{ready}  {command}\n",
                row.process_type,
                row.replicas,
                if row.replicas == 1 { "" } else { "s" }
            ));
        }
        out
    }

    pub fn scaled(ps: &Ps) -> String {
        let counts: Vec<String> = ps
            .rows
            .iter()
            .map(|r| format!("{}={}", r.process_type, r.replicas))
            .collect();
        format!("Scaled {}/{}: {}\n", ps.app, ps.env, counts.join(", "))
    }

    pub fn domains(
        app: &hoist_engine::AppName,
        env: &hoist_engine::EnvName,
        domains: &std::collections::BTreeSet<hoist_engine::Hostname>,
    ) -> String {
        if domains.is_empty() {
            return format!("{app}/{env} has no domains\n");
        }
        domains.iter().map(|d| format!("{d}\n")).collect()
    }
}

/// `ps scale`'s `TYPE=N`: a process type and a count from 0 to
/// [`MAX_REPLICAS`](hoist_engine::formation::MAX_REPLICAS). One rule for every front end.
pub fn parse_scale(pair: &str) -> Result<(hoist_engine::ProcessType, u32)> {
    let (process_type, count) = pair.split_once('=').ok_or_else(|| {
        Error::rejected(format!("invalid scale {pair:?}: must be TYPE=N (web=3)"))
    })?;
    scale_entry(process_type, count)
}

/// One process type's count, as the HTTP API's body gives it.
pub fn scale_entry(process_type: &str, count: &str) -> Result<(hoist_engine::ProcessType, u32)> {
    let process_type = process_type.parse::<hoist_engine::ProcessType>()?;
    let count = count
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= hoist_engine::formation::MAX_REPLICAS && !count.starts_with('+'))
        .ok_or_else(|| {
            Error::rejected(format!(
                "invalid scale {process_type}={count}: N must be a whole number from 0 to {}",
                hoist_engine::formation::MAX_REPLICAS
            ))
        })?;
    Ok((process_type, count))
}

/// `--process TYPE=CMD` flags and a Procfile's text (either may be absent) as one set of
/// process types and a release command; a type (or the release command) given twice is
/// refused, naming where.
pub fn processes_of(
    flags: &[String],
    procfile: Option<&str>,
    release_command: Option<String>,
) -> Result<(hoist_engine::Processes, Option<String>)> {
    let (mut processes, from_file) = match procfile {
        Some(text) => hoist_engine::formation::parse_procfile(text)
            .map_err(|e| Error::rejected(e.to_string()))?,
        None => Default::default(),
    };
    for flag in flags {
        let (process_type, command) = flag.split_once('=').ok_or_else(|| {
            Error::rejected(format!(
                "invalid --process {flag:?}: must be TYPE=CMD (web='bin/server')"
            ))
        })?;
        let process_type = process_type.parse::<hoist_engine::ProcessType>()?;
        if processes.contains_key(&process_type) {
            return Err(Error::rejected(format!(
                "process type {process_type} is given twice (--process and --procfile, or --process twice)"
            )));
        }
        processes.insert(process_type, command.to_string());
    }
    let release_command = match (from_file, release_command) {
        (Some(_), Some(_)) => return Err(Error::rejected(
            "the release command is given twice (--release-command and the Procfile's release:)",
        )),
        (file, flag) => file.or(flag),
    };
    Ok((processes, release_command))
}
