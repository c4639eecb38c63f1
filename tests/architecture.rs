//! The crate boundaries of ARCHITECTURE.md, checked on the resolved dependency graph
//! (`cargo metadata`): a dependency that crosses one fails here, not in review.
//!
//! Only normal dependencies count (a test may start a NATS client or a runtime); for the engine
//! and the read models they count transitively, so an I/O crate or a store cannot come in
//! through a helper crate either.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// Crates that do I/O (storage, network, an async runtime, system calls): none may reach the
/// engine, whose core is pure and whose store is a trait.
const IO_CRATES: &[&str] = &[
    "sled",
    "async-nats",
    "tokio",
    "mio",
    "socket2",
    "kube",
    "kube-client",
    "k8s-openapi",
    "axum",
    "hyper",
    "reqwest",
    "rustls",
    "tokio-rustls",
    "tower",
    "rustix",
    "nix",
    "memmap2",
];

/// Backends and cluster clients, and the only workspace crates allowed to depend on them directly.
const OWNED: &[(&str, &[&str])] = &[
    ("async-nats", &["hoist-stores"]),
    ("sled", &["hoist-stores"]),
    ("kube", &["hoist-adapters"]),
    ("k8s-openapi", &["hoist-adapters"]),
];

/// What the binary must never name itself: a front end opens a store through `hoist-control`.
const NOT_IN_BINARY: &[&str] = &["sled", "async-nats"];

/// The crate table: the workspace crates each may depend on (dependencies point down the table).
const LAYERS: &[(&str, &[&str])] = &[
    ("hoist-proto", &[]),
    ("hoist-engine", &["hoist-proto"]),
    ("hoist-stores", &["hoist-engine"]),
    ("hoist-projections", &["hoist-proto", "hoist-engine"]),
    ("hoist-adapters", &["hoist-engine"]),
    (
        "hoist-control",
        &[
            "hoist-engine",
            "hoist-stores",
            "hoist-projections",
            "hoist-adapters",
        ],
    ),
    // A front end calls the one boundary, nothing below it.
    ("hoist-server", &["hoist-control"]),
    ("hoist", &["hoist-control", "hoist-server"]),
];

/// What the one boundary must not know of: command lines, terminals, HTTP.
const NOT_IN_CONTROL: &[&str] = &[
    "clap",
    "console",
    "indicatif",
    "axum",
    "hyper",
    "tracing-subscriber",
];

/// What the read models must never depend on: they fold through the engine's traits
/// (`EventStore`, `ModelStore`), whose implementations are in `hoist-stores`.
const NOT_IN_PROJECTIONS: &[&str] = &["hoist-stores", "sled", "async-nats"];

#[derive(Clone)]
struct Graph {
    names: HashMap<String, String>,
    /// Package id → ids of its normal (not dev, not build) dependencies.
    normal: HashMap<String, Vec<String>>,
    members: Vec<String>,
}

impl Graph {
    fn from_metadata(metadata: &Value) -> Graph {
        let names = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (string(&p["id"]), string(&p["name"])))
            .collect();
        let normal = metadata["resolve"]["nodes"]
            .as_array()
            .expect("resolve.nodes")
            .iter()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .expect("deps")
                    .iter()
                    .filter(|dep| {
                        dep["dep_kinds"]
                            .as_array()
                            .expect("dep_kinds")
                            .iter()
                            .any(|kind| kind["kind"].is_null())
                    })
                    .map(|dep| string(&dep["pkg"]))
                    .collect();
                (string(&node["id"]), deps)
            })
            .collect();
        let members = metadata["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(string)
            .collect();
        Graph {
            names,
            normal,
            members,
        }
    }

    fn name(&self, id: &str) -> &str {
        &self.names[id]
    }

    fn member(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.name(id) == name)
            .unwrap_or_else(|| panic!("{name} is a workspace member"))
    }

    fn direct(&self, id: &str) -> BTreeSet<&str> {
        self.normal[id].iter().map(|d| self.name(d)).collect()
    }

    fn transitive(&self, id: &str) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![id];
        while let Some(next) = todo.pop() {
            for dep in &self.normal[next] {
                if seen.insert(dep.as_str()) {
                    todo.push(dep);
                }
            }
        }
        seen.into_iter().map(|d| self.name(d)).collect()
    }

    /// Every rule the graph breaks, one line each.
    fn violations(&self) -> Vec<String> {
        let mut broken = Vec::new();
        let engine = self.member("hoist-engine");
        for io in self.transitive(engine) {
            if IO_CRATES.contains(&io) {
                broken.push(format!(
                    "hoist-engine depends on the I/O crate {io}: the engine does no I/O"
                ));
            }
        }
        for member in &self.members {
            let name = self.name(member);
            let direct = self.direct(member);
            for (backend, allowed) in OWNED {
                if direct.contains(backend) && !allowed.contains(&name) {
                    broken.push(format!(
                        "{name} depends on {backend}: only {} may",
                        allowed.join(", ")
                    ));
                }
            }
            let layer = LAYERS.iter().find(|(layer, _)| *layer == name);
            let (_, allowed) = layer.unwrap_or_else(|| panic!("{name} is in LAYERS"));
            for dep in direct.iter().filter(|dep| dep.starts_with("hoist-")) {
                if !allowed.contains(dep) {
                    broken.push(format!(
                        "{name} depends on {dep}: the crate table allows {}",
                        if allowed.is_empty() {
                            "no hoist crate".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ));
                }
            }
            if name == "hoist-control" {
                for front in NOT_IN_CONTROL.iter().filter(|c| direct.contains(*c)) {
                    broken.push(format!(
                        "hoist-control depends on {front}: it knows nothing of clap, terminals or HTTP"
                    ));
                }
            }
            if name == "hoist" {
                for backend in NOT_IN_BINARY {
                    if direct.contains(backend) {
                        broken.push(format!(
                            "the hoist binary depends on {backend}: it opens stores through hoist-stores"
                        ));
                    }
                }
            }
            if name == "hoist-projections" {
                for store in NOT_IN_PROJECTIONS {
                    if self.transitive(member).contains(store) {
                        broken.push(format!(
                            "hoist-projections depends on {store}: the read models are kept through the engine's ModelStore"
                        ));
                    }
                }
            }
        }
        broken
    }
}

fn string(value: &Value) -> String {
    value.as_str().expect("a string").to_string()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn the_crate_boundaries_hold() {
    let graph = Graph::from_metadata(&metadata());
    let broken = graph.violations();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The check sees a crossing: the real graph with one forbidden edge added per rule.
#[test]
fn a_forbidden_dependency_is_reported() {
    let real = Graph::from_metadata(&metadata());
    let id_of = |name: &str| {
        real.names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("{name} is in the graph"))
    };
    let cases = [
        (
            "hoist-engine",
            "tokio",
            "hoist-engine depends on the I/O crate tokio",
        ),
        (
            "hoist-engine",
            "sled",
            "hoist-engine depends on the I/O crate sled",
        ),
        (
            "hoist-engine",
            "async-nats",
            "hoist-engine depends on the I/O crate async-nats",
        ),
        (
            "hoist-adapters",
            "async-nats",
            "hoist-adapters depends on async-nats",
        ),
        ("hoist-adapters", "sled", "hoist-adapters depends on sled"),
        ("hoist-stores", "kube", "hoist-stores depends on kube"),
        ("hoist", "sled", "the hoist binary depends on sled"),
        ("hoist", "hoist-stores", "hoist depends on hoist-stores"),
        ("hoist", "hoist-engine", "hoist depends on hoist-engine"),
        (
            "hoist-engine",
            "hoist-control",
            "hoist-engine depends on hoist-control",
        ),
        ("hoist-control", "clap", "hoist-control depends on clap"),
        ("hoist-control", "axum", "hoist-control depends on axum"),
        ("hoist-control", "hyper", "hoist-control depends on hyper"),
        (
            "hoist-server",
            "hoist-engine",
            "hoist-server depends on hoist-engine",
        ),
        (
            "hoist-server",
            "hoist-stores",
            "hoist-server depends on hoist-stores",
        ),
        ("hoist-server", "sled", "hoist-server depends on sled"),
        (
            "hoist-control",
            "console",
            "hoist-control depends on console",
        ),
        (
            "hoist-projections",
            "sled",
            "hoist-projections depends on sled",
        ),
        (
            "hoist-projections",
            "hoist-stores",
            "hoist-projections depends on hoist-stores",
        ),
    ];
    for (from, to, expected) in cases {
        let mut graph = real.clone();
        let from = graph.member(from).to_string();
        graph.normal.get_mut(&from).unwrap().push(id_of(to));
        let broken = graph.violations();
        assert!(
            broken.iter().any(|line| line.starts_with(expected)),
            "{expected}: not reported in {broken:?}"
        );
    }
}
