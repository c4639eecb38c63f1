//! The one renderer of desired Kubernetes objects from a release. Both the kube target (which
//! applies them) and the manifests target (which writes them for a GitOps tool) use it, so what a
//! cluster runs never depends on how it got there.
//!
//! A release becomes: an immutable ConfigMap `APP-config-vN` with its plain config, an immutable
//! Secret `APP-secrets-vN` with its secret config (only when it has some), and per process type
//! of its build a Deployment (`APP` for `web`, so apps released before process types converge
//! in place; `APP-TYPE` for the others) whose pod template reads both through `envFrom` and
//! names the release in an annotation, so a config change rolls the pods like a new image does.
//! Versioned names make config immutable in the cluster as in the log: a rollback points back at
//! objects equal to the old ones.
//!
//! Issue 14 (formation): `web` gets `PORT` (8080 unless the config sets it), a named container
//! port `http`, a Service `APP` and, when the env has domains, an Ingress `APP`; a readiness
//! probe when the env has a health path. A build with a release command gets a Job
//! `APP-release-vN` (same image, same config) that the kube target runs to completion before it
//! touches a Deployment.

use hoist_engine::formation::{Formation, Process, DEFAULT_PORT};
use hoist_engine::secrets::SecretKey;
use hoist_engine::{AppName, ConfigValue, Release, ReleaseVersion};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction,
    PodSpec, PodTemplateSpec, Probe, Secret, SecretEnvSource, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use std::collections::BTreeMap;

/// The field manager of every server-side apply, and the value of `managed-by`.
pub const MANAGER: &str = "hoist";
/// Pod-template annotation and label of versioned objects: the release version.
pub const RELEASE_KEY: &str = "hoist.dev/release";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// issue 14: the process type a Deployment (and its pods) runs.
pub const PROCESS_LABEL: &str = "hoist.dev/process";
/// issue 14: the app a non-`web` process's pods belong to (their name label is `APP-TYPE`).
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// The name of `web`'s container port, which the Service, the Ingress and the probe use.
pub const HTTP_PORT: &str = "http";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{app} {version} has no image yet: nothing to run (deploy an image first)")]
    NoImage {
        app: AppName,
        version: ReleaseVersion,
    },
    #[error("{app} {version} has secret config but no secret key was given to open it")]
    NoSecretKey {
        app: AppName,
        version: ReleaseVersion,
    },
    #[error("{app} {version}: secret {key} cannot be opened: {reason}")]
    Secret {
        app: AppName,
        version: ReleaseVersion,
        key: String,
        reason: String,
    },
}

/// Everything one release asks of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub secret: Option<Secret>,
    /// One per process type, `web` (if any) first.
    pub deployments: Vec<Deployment>,
    // issue 14
    /// The release phase: run to completion before any Deployment changes.
    pub release_job: Option<Job>,
    /// `web`'s Service, when the build has a `web` process.
    pub service: Option<Service>,
    /// The env's domains routed to `web`'s Service, when it has any.
    pub ingress: Option<Ingress>,
}

impl Desired {
    /// The same objects with the Secret's values replaced by `<redacted>`, for showing.
    pub fn redacted(&self) -> Desired {
        let mut shown = self.clone();
        if let Some(secret) = &mut shown.secret {
            for value in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
                *value = ByteString(hoist_engine::ConfigValue::REDACTED.as_bytes().to_vec());
            }
        }
        shown
    }
}

// issue 16
impl Desired {
    /// Every object, in apply order, with the API resource it is served as: what drift compares,
    /// whatever kinds the renderer makes.
    pub fn objects(&self) -> Vec<(kube::core::ApiResource, crate::drift::Rendered)> {
        let mut objects = vec![rendered(&self.config_map)];
        objects.extend(self.secret.as_ref().map(rendered));
        // issue 14's objects too; the release Job is not compared (it runs once and is done).
        objects.extend(self.deployments.iter().map(rendered));
        objects.extend(self.service.as_ref().map(rendered));
        objects.extend(self.ingress.as_ref().map(rendered));
        objects
    }
}

/// One object as drift compares it.
fn rendered<K>(object: &K) -> (kube::core::ApiResource, crate::drift::Rendered)
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    let resource = kube::core::ApiResource::erase::<K>(&());
    let rendered = crate::drift::Rendered {
        kind: resource.kind.clone(),
        name: object.meta().name.clone().unwrap_or_default(),
        object: serde_json::to_value(object).expect("k8s-openapi objects serialize"),
    };
    (resource, rendered)
}

pub fn config_map_name(app: &AppName, version: ReleaseVersion) -> String {
    format!("{app}-config-v{}", version.get())
}

pub fn secret_name(app: &AppName, version: ReleaseVersion) -> String {
    format!("{app}-secrets-v{}", version.get())
}

/// The release phase's Job of `version`.
pub fn release_job_name(app: &AppName, version: ReleaseVersion) -> String {
    format!("{app}-release-v{}", version.get())
}

/// The Deployment of a process type: `APP` for `web`, `APP-TYPE` for the others.
pub fn deployment_name(app: &AppName, process: &hoist_engine::ProcessType) -> String {
    if process.is_web() {
        app.to_string()
    } else {
        format!("{app}-{process}")
    }
}

/// Labels every object hoist renders carries; selecting on them finds hoist's objects of an app.
pub fn selector_labels(app: &AppName) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), app.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
    ])
}

/// The label selector (`k=v,k=v`) of hoist's objects of `app`.
pub fn label_selector(app: &AppName) -> String {
    selector_labels(app)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Renders `release` of `app` as `formation` runs it. `namespace` is left out for a GitOps
/// directory, whose tool sets it. Sealed values are opened with `key` here, at the edge; they
/// never pass through anything else.
pub fn render(
    app: &AppName,
    namespace: Option<&str>,
    release: &Release,
    formation: &Formation,
    key: Option<&SecretKey>,
) -> Result<Desired, RenderError> {
    let version = release.version;
    let build = release.build.as_ref().ok_or_else(|| RenderError::NoImage {
        app: app.clone(),
        version,
    })?;
    let mut plain = BTreeMap::new();
    let mut secret = BTreeMap::new();
    for (name, value) in &release.config {
        match value {
            ConfigValue::Plain(text) => {
                plain.insert(name.to_string(), text.clone());
            }
            ConfigValue::Sealed(sealed) => {
                let key = key.ok_or_else(|| RenderError::NoSecretKey {
                    app: app.clone(),
                    version,
                })?;
                let text = key
                    .open(name.as_str(), sealed)
                    .map_err(|e| RenderError::Secret {
                        app: app.clone(),
                        version,
                        key: name.to_string(),
                        reason: e.to_string(),
                    })?;
                secret.insert(name.to_string(), ByteString(text.into_bytes()));
            }
        }
    }
    // `PORT` from the config when it sets one (a number), else hoist's default, set for `web`.
    let config_port = plain.get("PORT").cloned().or_else(|| {
        secret
            .get("PORT")
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    });
    let port: i32 = config_port
        .as_deref()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .map_or(i32::from(DEFAULT_PORT), i32::from);
    let meta = |name: String, labels: BTreeMap<String, String>| ObjectMeta {
        name: Some(name),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..ObjectMeta::default()
    };
    let versioned_labels = || {
        let mut labels = selector_labels(app);
        labels.insert(RELEASE_KEY.to_string(), version.get().to_string());
        labels
    };
    let config_map = ConfigMap {
        metadata: meta(config_map_name(app, version), versioned_labels()),
        data: Some(plain),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    let secret = (!secret.is_empty()).then(|| Secret {
        metadata: meta(secret_name(app, version), versioned_labels()),
        data: Some(secret),
        immutable: Some(true),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    });
    let mut env_from = vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: config_map_name(app, version),
            optional: None,
        }),
        ..EnvFromSource::default()
    }];
    if secret.is_some() {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret_name(app, version),
                optional: None,
            }),
            ..EnvFromSource::default()
        });
    }
    let shell = |command: &str| vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
    let release_annotation =
        || BTreeMap::from([(RELEASE_KEY.to_string(), version.get().to_string())]);
    let web_process = formation.web();
    let mut processes: Vec<&Process> = web_process.into_iter().collect();
    processes.extend(
        formation
            .processes
            .iter()
            .filter(|p| !p.process_type.is_web()),
    );
    let deployments = processes
        .into_iter()
        .map(|process| {
            let name = deployment_name(app, &process.process_type);
            let mut labels = selector_labels(app);
            labels.insert(PROCESS_LABEL.to_string(), process.process_type.to_string());
            // `web` keeps the selector it always had (a selector cannot change); the others
            // select their own name, so no selector matches another type's pods.
            let (selector, pod_labels) = if process.process_type.is_web() {
                let selector = BTreeMap::from([(NAME_LABEL.to_string(), app.to_string())]);
                (selector, labels.clone())
            } else {
                let selector = BTreeMap::from([
                    (NAME_LABEL.to_string(), name.clone()),
                    (PROCESS_LABEL.to_string(), process.process_type.to_string()),
                ]);
                let mut pod_labels = selector.clone();
                pod_labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
                pod_labels.insert(PART_OF_LABEL.to_string(), app.to_string());
                (selector, pod_labels)
            };
            let web = process.process_type.is_web();
            let container = Container {
                name: if web {
                    app.to_string()
                } else {
                    process.process_type.to_string()
                },
                image: Some(build.image.to_string()),
                command: process.command.as_deref().map(shell),
                env_from: Some(env_from.clone()),
                env: (web && config_port.is_none()).then(|| {
                    vec![EnvVar {
                        name: "PORT".to_string(),
                        value: Some(port.to_string()),
                        ..EnvVar::default()
                    }]
                }),
                ports: web.then(|| {
                    vec![ContainerPort {
                        name: Some(HTTP_PORT.to_string()),
                        container_port: port,
                        ..ContainerPort::default()
                    }]
                }),
                readiness_probe: formation.routing.health_path.as_ref().filter(|_| web).map(
                    |path| Probe {
                        http_get: Some(HTTPGetAction {
                            path: Some(path.clone()),
                            port: IntOrString::String(HTTP_PORT.to_string()),
                            ..HTTPGetAction::default()
                        }),
                        ..Probe::default()
                    },
                ),
                ..Container::default()
            };
            Deployment {
                metadata: meta(name, labels),
                spec: DeploymentSpec {
                    // Only a count `ps scale` set is hoist's: else the cluster's default (1) or an
                    // autoscaler's.
                    replicas: process
                        .scaled
                        .then(|| i32::try_from(process.replicas).unwrap_or(i32::MAX)),
                    selector: LabelSelector {
                        match_labels: Some(selector),
                        ..LabelSelector::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            annotations: Some(release_annotation()),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![container],
                            ..PodSpec::default()
                        }),
                    },
                    ..DeploymentSpec::default()
                },
                ..Deployment::default()
            }
        })
        .collect();
    let release_job = formation.release_command.as_deref().map(|command| {
        let pod_labels = BTreeMap::from([
            (NAME_LABEL.to_string(), format!("{app}-release")),
            (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
            (PART_OF_LABEL.to_string(), app.to_string()),
        ]);
        Job {
            metadata: meta(release_job_name(app, version), versioned_labels()),
            spec: Some(JobSpec {
                // One try: a migration that failed is for people to look at, not to retry.
                backoff_limit: Some(0),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        annotations: Some(release_annotation()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".to_string()),
                        containers: vec![Container {
                            name: "release".to_string(),
                            image: Some(build.image.to_string()),
                            command: Some(shell(command)),
                            env_from: Some(env_from.clone()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                },
                ..JobSpec::default()
            }),
            ..Job::default()
        }
    });
    let service = web_process.map(|_| Service {
        metadata: meta(app.to_string(), selector_labels(app)),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(NAME_LABEL.to_string(), app.to_string())])),
            ports: Some(vec![ServicePort {
                name: Some(HTTP_PORT.to_string()),
                port: 80,
                target_port: Some(IntOrString::String(HTTP_PORT.to_string())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    });
    let ingress = (web_process.is_some() && !formation.domains.is_empty()).then(|| {
        let hosts: Vec<String> = formation.domains.iter().map(|h| h.to_string()).collect();
        let backend = IngressBackend {
            service: Some(IngressServiceBackend {
                name: app.to_string(),
                port: Some(ServiceBackendPort {
                    name: Some(HTTP_PORT.to_string()),
                    number: None,
                }),
            }),
            ..IngressBackend::default()
        };
        Ingress {
            metadata: meta(app.to_string(), selector_labels(app)),
            spec: Some(IngressSpec {
                ingress_class_name: formation.routing.ingress_class.clone(),
                rules: Some(
                    hosts
                        .iter()
                        .map(|host| IngressRule {
                            host: Some(host.clone()),
                            http: Some(HTTPIngressRuleValue {
                                paths: vec![HTTPIngressPath {
                                    path: Some("/".to_string()),
                                    path_type: "Prefix".to_string(),
                                    backend: backend.clone(),
                                }],
                            }),
                        })
                        .collect(),
                ),
                tls: formation.routing.tls_secret.as_ref().map(|secret| {
                    vec![IngressTLS {
                        hosts: Some(hosts.clone()),
                        secret_name: Some(secret.clone()),
                    }]
                }),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }
    });
    Ok(Desired {
        config_map,
        secret,
        deployments,
        release_job,
        service,
        ingress,
    })
}

/// Objects as YAML documents, in apply order (config before the Deployment that reads it).
pub fn to_yaml(desired: &Desired, with_secret: bool) -> String {
    let mut docs = vec![yaml(&desired.config_map)];
    if with_secret {
        docs.extend(desired.secret.as_ref().map(yaml));
    }
    docs.extend(desired.release_job.as_ref().map(yaml));
    docs.extend(desired.deployments.iter().map(yaml));
    docs.extend(desired.service.as_ref().map(yaml));
    docs.extend(desired.ingress.as_ref().map(yaml));
    docs.join("---\n")
}

/// One object as a YAML document in block style, every string value double-quoted.
///
/// A plain scalar is typed by the reader, and readers disagree: YAML 1.1 (PyYAML, so
/// `kubernetes-validate`, and older Go tooling) reads `yes`, `on`, `2001-12-14`, `1:20` or `0x1F`
/// as booleans, dates and numbers, and then a ConfigMap's data is no longer strings. A
/// double-quoted scalar is a string to every reader, and with its escapes it holds any value on
/// one line (newlines, leading spaces, `#`, control characters). Keys stay plain where every
/// reader takes them for the same string (`app.kubernetes.io/name`, `PORT`), quoted otherwise
/// (`ON`, `yes`, `_X`).
fn yaml<T: serde::Serialize>(object: &T) -> String {
    let value = serde_yaml_ng::to_value(object).expect("k8s-openapi objects serialize");
    block_lines(&value)
        .into_iter()
        .map(|line| line + "\n")
        .collect()
}

/// `value` as lines of block YAML, indented relative to the value's own column.
fn block_lines(value: &serde_yaml_ng::Value) -> Vec<String> {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            let mut lines = Vec::new();
            for (key, value) in map {
                let key = match key {
                    Value::String(key) if is_plain_key(key) => key.clone(),
                    key => scalar(key),
                };
                match value {
                    Value::Mapping(inner) if !inner.is_empty() => {
                        lines.push(format!("{key}:"));
                        lines.extend(block_lines(value).into_iter().map(|l| format!("  {l}")));
                    }
                    // A sequence under a key sits at the key's column, as kubectl writes it.
                    Value::Sequence(items) if !items.is_empty() => {
                        lines.push(format!("{key}:"));
                        lines.extend(block_lines(value));
                    }
                    scalar_value => lines.push(format!("{key}: {}", scalar(scalar_value))),
                }
            }
            lines
        }
        Value::Sequence(items) if !items.is_empty() => items
            .iter()
            .flat_map(|item| {
                block_lines(item).into_iter().enumerate().map(|(i, l)| {
                    if i == 0 {
                        format!("- {l}")
                    } else {
                        format!("  {l}")
                    }
                })
            })
            .collect(),
        Value::Tagged(tagged) => block_lines(&tagged.value),
        value => vec![scalar(value)],
    }
}

/// A value that is not a non-empty mapping or sequence, on one line.
fn scalar(value: &serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value;
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => double_quoted(s),
        Value::Mapping(_) => "{}".to_string(),
        Value::Sequence(_) => "[]".to_string(),
        Value::Tagged(tagged) => scalar(&tagged.value),
    }
}

/// A key every YAML reader takes as this same string when written plain: a letter, then
/// letters, digits and `_./-`, and none of the words YAML 1.1 reads as a boolean or null.
fn is_plain_key(key: &str) -> bool {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !WORDS.iter().any(|w| key.eq_ignore_ascii_case(w))
}

/// `s` as a YAML double-quoted scalar: quotes, backslashes and every character YAML does not
/// allow raw (controls, DEL, C1, U+2028/2029 which YAML 1.1 reads as line breaks, BOM,
/// non-characters) escaped.
fn double_quoted(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c < ' '
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use hoist_engine::{Build, ConfigKey, ReleaseKind};
    use proptest::prelude::*;

    fn release(version: u64, config: &[(&str, ConfigValue)]) -> Release {
        Release {
            version: ReleaseVersion::new(version).unwrap(),
            kind: ReleaseKind::Deploy,
            build: Some(Build::of_image(
                format!("registry.example/api@sha256:{}", "a".repeat(64))
                    .parse()
                    .unwrap(),
            )),
            config: config
                .iter()
                .map(|(k, v)| (k.parse::<ConfigKey>().unwrap(), v.clone()))
                .collect(),
            source: None,
            rollback_to: None,
            description: "Deploy".into(),
        }
    }

    fn app() -> AppName {
        "api".parse().unwrap()
    }

    /// A build without process types: one `web` with the image's entrypoint.
    fn bare() -> Formation {
        Formation::of(
            &Default::default(),
            None,
            &Default::default(),
            &Default::default(),
            &Default::default(),
        )
    }

    #[test]
    fn a_release_with_plain_config_renders_a_configmap_and_a_deployment() {
        let release = release(7, &[("PORT", ConfigValue::Plain("8080".into()))]);
        let desired = render(&app(), Some("production"), &release, &bare(), None).unwrap();
        assert!(desired.secret.is_none());
        expect![[r#"
            apiVersion: "v1"
            kind: "ConfigMap"
            data:
              PORT: "8080"
            immutable: true
            metadata:
              labels:
                app.kubernetes.io/managed-by: "hoist"
                app.kubernetes.io/name: "api"
                hoist.dev/release: "7"
              name: "api-config-v7"
              namespace: "production"
            ---
            apiVersion: "apps/v1"
            kind: "Deployment"
            metadata:
              labels:
                app.kubernetes.io/managed-by: "hoist"
                app.kubernetes.io/name: "api"
                hoist.dev/process: "web"
              name: "api"
              namespace: "production"
            spec:
              selector:
                matchLabels:
                  app.kubernetes.io/name: "api"
              template:
                metadata:
                  annotations:
                    hoist.dev/release: "7"
                  labels:
                    app.kubernetes.io/managed-by: "hoist"
                    app.kubernetes.io/name: "api"
                    hoist.dev/process: "web"
                spec:
                  containers:
                  - envFrom:
                    - configMapRef:
                        name: "api-config-v7"
                    image: "registry.example/api@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    name: "api"
                    ports:
                    - containerPort: 8080
                      name: "http"
            ---
            apiVersion: "v1"
            kind: "Service"
            metadata:
              labels:
                app.kubernetes.io/managed-by: "hoist"
                app.kubernetes.io/name: "api"
              name: "api"
              namespace: "production"
            spec:
              ports:
              - name: "http"
                port: 80
                targetPort: "http"
              selector:
                app.kubernetes.io/name: "api"
        "#]]
        .assert_eq(&to_yaml(&desired, true));
    }

    #[test]
    fn secrets_are_opened_into_an_immutable_secret_read_by_envfrom() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(&dir.path().join("key")).unwrap();
        let sealed = ConfigValue::Sealed(key.seal("TOKEN", "s3cr3t"));
        let release = release(2, &[("TOKEN", sealed)]);
        assert!(matches!(
            render(&app(), None, &release, &bare(), None),
            Err(RenderError::NoSecretKey { .. })
        ));
        let desired = render(&app(), None, &release, &bare(), Some(&key)).unwrap();
        expect![[r#"
            apiVersion: "v1"
            kind: "Secret"
            data:
              TOKEN: "czNjcjN0"
            immutable: true
            metadata:
              labels:
                app.kubernetes.io/managed-by: "hoist"
                app.kubernetes.io/name: "api"
                hoist.dev/release: "2"
              name: "api-secrets-v2"
            type: "Opaque"
        "#]]
        .assert_eq(&yaml(desired.secret.as_ref().unwrap()));
        let env_from = &desired.deployments[0]
            .spec
            .template
            .spec
            .clone()
            .unwrap()
            .containers[0]
            .env_from
            .clone()
            .unwrap();
        assert_eq!(
            env_from[1].secret_ref.as_ref().map(|s| s.name.as_str()),
            Some("api-secrets-v2")
        );
    }

    /// issue 14: a `web` and a `worker`, the config's own `PORT`, no domains.
    #[test]
    fn each_process_type_is_a_deployment_and_the_configs_port_wins() {
        let processes = [("web", "bin/server"), ("worker", "bin/jobs")]
            .iter()
            .map(|(t, c)| (t.parse().unwrap(), c.to_string()))
            .collect();
        let scale = [("worker".parse().unwrap(), 0)].into_iter().collect();
        let formation = Formation::of(
            &processes,
            Some("bin/migrate"),
            &scale,
            &Default::default(),
            &Default::default(),
        );
        let release = release(4, &[("PORT", ConfigValue::Plain("5000".into()))]);
        let desired = render(&app(), None, &release, &formation, None).unwrap();
        let names: Vec<_> = desired
            .deployments
            .iter()
            .map(|d| d.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["api", "api-worker"]);
        let web = desired.deployments[0].spec.template.spec.clone().unwrap();
        assert_eq!(web.containers[0].env, None, "PORT comes from the config");
        assert_eq!(
            web.containers[0].ports.as_ref().unwrap()[0].container_port,
            5000
        );
        assert_eq!(web.containers[0].readiness_probe, None, "no health path");
        assert_eq!(desired.deployments[1].spec.replicas, Some(0));
        assert!(desired.deployments[1]
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .ports
            .is_none());
        assert_eq!(
            desired.release_job.unwrap().metadata.name.as_deref(),
            Some("api-release-v4")
        );
        assert!(desired.service.is_some());
        assert!(desired.ingress.is_none(), "no domains, no Ingress");
        // Without a web process: no Service, no Ingress even with domains.
        let workers = [("worker".parse().unwrap(), "bin/jobs".to_string())]
            .into_iter()
            .collect();
        let domains = ["api.example.com".parse().unwrap()].into_iter().collect();
        let formation = Formation::of(&workers, None, &scale, &domains, &Default::default());
        let desired = render(&app(), None, &release, &formation, None).unwrap();
        assert!(desired.service.is_none() && desired.ingress.is_none());
    }

    #[test]
    fn a_release_without_an_image_renders_nothing() {
        let mut release = release(1, &[]);
        release.build = None;
        assert!(matches!(
            render(&app(), None, &release, &bare(), None),
            Err(RenderError::NoImage { .. })
        ));
    }

    /// Strings YAML 1.1 or 1.2 readers would type as something else if written plain.
    const TRICKY: [&str; 24] = [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "Y",
        "NO",
        "null",
        "~",
        "",
        "2001-12-14",
        "1:20",
        "0x1F",
        "0o17",
        "1e3",
        ".inf",
        "-.Inf",
        ".nan",
        " leading",
        "trailing ",
        "# not a comment",
        "two\nlines",
        "tab\tquote\"back\\slash \u{1b}[31m \u{85} \u{2028} \u{feff}",
    ];

    fn config_value() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(TRICKY.to_vec()).prop_map(str::to_string),
            any::<String>(),
            "[ -~\n]{0,40}",
        ]
    }

    fn config_key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "ON", "yes", "Y", "n", "NULL", "True", "_", "_X", "inf"
            ])
            .prop_map(str::to_string),
            "[A-Za-z_][A-Za-z0-9_]{0,20}",
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_config_reads_back_from_the_yaml_as_the_same_objects(
            config in proptest::collection::btree_map(config_key(), config_value(), 1..6)
        ) {
            let pairs: Vec<(&str, ConfigValue)> = config
                .iter()
                .map(|(k, v)| (k.as_str(), ConfigValue::Plain(v.clone())))
                .collect();
            let desired = render(&app(), Some("production"), &release(3, &pairs), &bare(), None).unwrap();
            let written = to_yaml(&desired, true);
            let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&written)
                .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
                .collect();
            proptest::prop_assert_eq!(docs.len(), 3, "ConfigMap, Deployment, Service");
            for (key, value) in &config {
                proptest::prop_assert_eq!(
                    &docs[0]["data"][key.as_str()],
                    &serde_yaml_ng::Value::String(value.clone()),
                    "{}", written
                );
            }
            let config_map: ConfigMap = serde_yaml_ng::from_value(docs[0].clone()).unwrap();
            let deployment: Deployment = serde_yaml_ng::from_value(docs[1].clone()).unwrap();
            proptest::prop_assert_eq!(config_map, desired.config_map);
            proptest::prop_assert_eq!(&deployment, &desired.deployments[0]);
        }
    }
}
