//! Heroku's formation (issue 14): a build's process types and release-phase command, how a
//! Procfile names them, an env's scale and routing settings. Pure values and rules; `decide`
//! keeps them, the adapters render them.
//!
//! A build that names no process type runs one `web` process with the image's own entrypoint,
//! so builds (and releases) recorded before process types existed keep their shape.

use crate::names::{Hostname, ProcessType};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A build's process types and their commands (run with `sh -c`). Empty: one `web` process
/// running the image's entrypoint.
pub type Processes = BTreeMap<ProcessType, String>;

/// An env's replicas per process type, as `ps scale` set them; a type not named runs
/// [`DEFAULT_REPLICAS`].
pub type Scale = BTreeMap<ProcessType, u32>;

/// The replicas of a process type nobody scaled. Unlike Heroku, where only `web` starts at one,
/// every declared type runs one: a worker declared is a worker wanted.
pub const DEFAULT_REPLICAS: u32 = 1;
/// The most replicas `ps scale` sets for one type.
pub const MAX_REPLICAS: u32 = 10_000;
/// The most process types one build declares.
pub const MAX_PROCESS_TYPES: usize = 32;
/// The port the `web` process is told to listen on (`PORT`) unless the config sets `PORT`.
pub const DEFAULT_PORT: u16 = 8080;

/// One process type as an env runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    #[serde(rename = "type")]
    pub process_type: ProcessType,
    /// `None`: the image's entrypoint.
    pub command: Option<String>,
    pub replicas: u32,
    /// Whether the env's scale names this type (`ps scale`). When it does not, the replicas are
    /// the default and not hoist's to hold: the renderer leaves them to the cluster (or to an
    /// HorizontalPodAutoscaler, whose field they then are — not drift).
    #[serde(skip)]
    pub scaled: bool,
}

/// What an env's release runs and where it is reachable: the build's processes with the env's
/// scale, the env's domains and routing settings, and the release-phase command. Handed to
/// every target with the release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formation {
    pub processes: Vec<Process>,
    pub release_command: Option<String>,
    pub domains: BTreeSet<Hostname>,
    pub routing: Routing,
}

impl Formation {
    /// The formation of a build (`processes`, `release_command`) in an env scaled by `scale`.
    pub fn of(
        processes: &Processes,
        release_command: Option<&str>,
        scale: &Scale,
        domains: &BTreeSet<Hostname>,
        routing: &Routing,
    ) -> Self {
        let processes = process_types(processes)
            .into_iter()
            .map(|(process_type, command)| Process {
                scaled: scale.contains_key(&process_type),
                replicas: scale
                    .get(&process_type)
                    .copied()
                    .unwrap_or(DEFAULT_REPLICAS),
                process_type,
                command: command.map(str::to_string),
            })
            .collect();
        Formation {
            processes,
            release_command: release_command.map(str::to_string),
            domains: domains.clone(),
            routing: routing.clone(),
        }
    }

    pub fn web(&self) -> Option<&Process> {
        self.processes.iter().find(|p| p.process_type.is_web())
    }
}

/// The process types a build runs: its own, or one `web` with the image's entrypoint.
pub fn process_types(processes: &Processes) -> Vec<(ProcessType, Option<&str>)> {
    if processes.is_empty() {
        return vec![(ProcessType::web(), None)];
    }
    processes
        .iter()
        .map(|(t, c)| (t.clone(), Some(c.as_str())))
        .collect()
}

/// The canonical text of a build's formation, hashed into its id (empty for the default, so
/// the id stays the image's).
pub fn formation_key(processes: &Processes, release_command: Option<&str>) -> String {
    let mut key = String::new();
    for (process_type, command) in processes {
        key.push_str(&format!("{process_type}={command:?}\n"));
    }
    if let Some(command) = release_command {
        key.push_str(&format!("release={command:?}\n"));
    }
    key
}

/// How an env's `web` process is reached and checked, set with its target (`envs target
/// --ingress-class C --tls-secret S --health-path P`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The Ingress's `ingressClassName`; `None`: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class: Option<String>,
    /// The Secret holding the TLS certificate of the env's domains; `None`: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// The HTTP path of the `web` process's readiness probe; `None`: no probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
}

impl Routing {
    pub fn is_default(&self) -> bool {
        *self == Routing::default()
    }

    /// The rule each setting breaks, if any.
    pub fn check(&self) -> Result<(), &'static str> {
        let subdomain = |s: &str| {
            s.len() <= 253
                && s.split('.').all(|label| {
                    let b = label.as_bytes();
                    !b.is_empty()
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                        && b[0] != b'-'
                        && b[b.len() - 1] != b'-'
                })
        };
        if self.ingress_class.as_deref().is_some_and(|c| !subdomain(c)) {
            return Err(
                "--ingress-class must be a DNS subdomain (lowercase letters, digits, '-' and '.')",
            );
        }
        if self.tls_secret.as_deref().is_some_and(|c| !subdomain(c)) {
            return Err("--tls-secret must name a Secret: a DNS subdomain (lowercase letters, digits, '-' and '.')");
        }
        if self.health_path.as_deref().is_some_and(|p| {
            !p.starts_with('/')
                || p.len() > 1024
                || p.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err("--health-path must be an absolute URL path (`/healthz`) without spaces, at most 1024 bytes");
        }
        Ok(())
    }
}

/// What is wrong with a process command, if anything.
pub fn check_command(command: &str) -> Result<(), &'static str> {
    if command.trim().is_empty() {
        return Err("must not be empty");
    }
    if command.chars().any(|c| c.is_control() && c != '\t') {
        return Err("must be one line");
    }
    if command.len() > crate::names::limits::COMMAND_BYTES {
        return Err("is over 4096 bytes");
    }
    Ok(())
}

/// A Procfile line that breaks Heroku's format, by line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Procfile line {line}: {rule}")]
pub struct ProcfileError {
    pub line: usize,
    pub rule: String,
}

/// A Procfile (Heroku's format): one `TYPE: COMMAND` per line; blank lines and `#` comments
/// are skipped; `release:` names the release-phase command. Returns the process types and the
/// release command. A type given twice, a line that is not `TYPE: COMMAND`, an invalid type or
/// an empty command is refused with its line number.
pub fn parse_procfile(text: &str) -> Result<(Processes, Option<String>), ProcfileError> {
    let mut processes = Processes::new();
    let mut release: Option<(usize, String)> = None;
    let mut first_line = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let fail = |rule: String| ProcfileError { line, rule };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            return Err(fail(
                "expected `TYPE: COMMAND` (a process type, a colon, its command)".into(),
            ));
        };
        let (name, command) = (name.trim(), command.trim());
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(fail(
                "expected `TYPE: COMMAND` (a process type, a colon, its command)".into(),
            ));
        }
        if let Err(rule) = check_command(command) {
            return Err(fail(format!("the command of {name} {rule}")));
        }
        if let Some(first) = first_line.insert(name.to_string(), line) {
            return Err(fail(format!(
                "process type {name} is declared twice (first on line {first})"
            )));
        }
        if name == "release" {
            release = Some((line, command.to_string()));
            continue;
        }
        let process_type = name
            .parse::<ProcessType>()
            .map_err(|e| fail(e.to_string()))?;
        processes.insert(process_type, command.to_string());
    }
    if processes.len() > MAX_PROCESS_TYPES {
        return Err(ProcfileError {
            line: text.lines().count(),
            rule: format!("more than {MAX_PROCESS_TYPES} process types"),
        });
    }
    Ok((processes, release.map(|(_, c)| c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_procfile_names_processes_and_the_release_command() {
        let (processes, release) = parse_procfile(
            "# Heroku's format\nweb: bin/server --port $PORT\n\nworker:   bin/jobs\nrelease: bin/migrate\n",
        )
        .unwrap();
        assert_eq!(processes.len(), 2);
        assert_eq!(
            processes[&"web".parse().unwrap()],
            "bin/server --port $PORT"
        );
        assert_eq!(processes[&"worker".parse().unwrap()], "bin/jobs");
        assert_eq!(release.as_deref(), Some("bin/migrate"));
    }

    #[test]
    fn procfile_mistakes_are_named_with_their_line() {
        let cases = [
            ("web: a\nweb: b\n", "Procfile line 2: process type web is declared twice (first on line 1)"),
            ("web: a\nthis is junk\n", "Procfile line 2: expected `TYPE: COMMAND` (a process type, a colon, its command)"),
            ("web:\n", "Procfile line 1: the command of web must not be empty"),
            ("\nWeb_1: x\n", "Procfile line 2: invalid process type \"Web_1\": must be a DNS label (lowercase letters, digits and '-', at most 63 characters) other than `release`"),
            ("release: a\nrelease: b\n", "Procfile line 2: process type release is declared twice (first on line 1)"),
        ];
        for (text, message) in cases {
            assert_eq!(
                parse_procfile(text).unwrap_err().to_string(),
                message,
                "{text:?}"
            );
        }
    }

    fn process_type() -> impl proptest::strategy::Strategy<Value = ProcessType> {
        use proptest::prelude::*;
        "[a-z][a-z0-9-]{0,8}[a-z0-9]"
            .prop_filter("release is reserved", |t| t != "release")
            .prop_map(|t| t.parse().unwrap())
    }

    proptest::proptest! {
        /// Any set of process types and a release command, written as a Procfile (with
        /// comments and blank lines between), reads back as the same; any text at all is read
        /// or refused with a line number, never a panic.
        #[test]
        fn a_procfile_reads_back_what_was_written(
            processes in proptest::collection::btree_map(process_type(), "[a-z$/=.-][a-z$ /=.-]{0,14}[a-z]", 0..6),
            release in proptest::option::of("[a-z/-][a-z /-]{0,10}[a-z]"),
            noise in proptest::collection::vec(proptest::sample::select(vec!["", "# note", "   "]), 0..3),
        ) {
            let mut text = String::new();
            for (i, (t, c)) in processes.iter().enumerate() {
                text.push_str(&format!("{t}: {c}\n"));
                if let Some(n) = noise.get(i) {
                    text.push_str(n);
                    text.push('\n');
                }
            }
            if let Some(r) = &release {
                text.push_str(&format!("release:{r}\n"));
            }
            let (read, read_release) = parse_procfile(&text).unwrap();
            proptest::prop_assert_eq!(read, processes);
            proptest::prop_assert_eq!(read_release, release);
        }

        #[test]
        fn any_text_is_read_or_refused_with_a_line_number(text in "(.{0,20}\n){0,6}") {
            if let Err(e) = parse_procfile(&text) {
                proptest::prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1));
            }
        }
    }

    #[test]
    fn no_process_type_is_one_web_process_with_the_entrypoint() {
        let formation = Formation::of(
            &Processes::new(),
            None,
            &Scale::new(),
            &BTreeSet::new(),
            &Routing::default(),
        );
        assert_eq!(
            formation.processes,
            vec![Process {
                process_type: ProcessType::web(),
                command: None,
                replicas: DEFAULT_REPLICAS,
                scaled: false,
            }]
        );
        assert_eq!(formation_key(&Processes::new(), None), "");
    }
}
