//! The manifests target: the rendered objects of an env's current release as one YAML file,
//! `DIR/APP/ENV.yaml`, for a GitOps tool (Argo CD, Flux) to sync. The file is rewritten only when
//! its content changes (atomically: a temp file renamed over it), so a re-apply is a no-op a
//! watcher does not see.
//!
//! Secret values are never written: a GitOps directory is usually a git repository, and the log
//! keeps secrets sealed for the same reason. The Deployment still reads `APP-secrets-vN`; the
//! report names it so it can be provided out of band (sealed-secrets, external-secrets, …).

use crate::render::{to_yaml, Desired};
use crate::{Outcome, Report};
use hoist_engine::{AppName, EnvName, ReleaseVersion};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("manifests {path}: {source}")]
pub struct ManifestsError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Where the manifests of `app` in `env` live under `dir`.
pub fn path(dir: &Path, app: &AppName, env: &EnvName) -> PathBuf {
    dir.join(app.as_str()).join(format!("{env}.yaml"))
}

/// The file's content for this release.
pub fn content(app: &AppName, env: &EnvName, version: ReleaseVersion, desired: &Desired) -> String {
    format!(
        "# {app} {env} {version}, written by hoist: edits are overwritten by the next release.\n{}",
        to_yaml(desired, false)
    )
}

pub fn write(
    dir: &Path,
    app: &AppName,
    env: &EnvName,
    version: ReleaseVersion,
    desired: &Desired,
) -> Result<Report, ManifestsError> {
    let path = path(dir, app, env);
    let content = content(app, env, version, desired);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManifestsError { path, source }
    };
    let changed = match std::fs::read(&path) {
        Ok(existing) => existing != content.as_bytes(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(err(&path)(e)),
    };
    if changed {
        let parent = path.parent().expect("a file under dir");
        std::fs::create_dir_all(parent).map_err(err(parent))?;
        let temp = parent.join(format!(".{env}.yaml.tmp"));
        std::fs::write(&temp, &content).map_err(err(&temp))?;
        std::fs::rename(&temp, &path).map_err(err(&path))?;
    }
    let mut detail = format!(
        "{} {}",
        if changed { "wrote" } else { "unchanged" },
        path.display()
    );
    if let Some(secret) = &desired.secret {
        detail.push_str(&format!(
            "; secret {} not written (provide it out of band)",
            secret.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    Ok(Report {
        outcome: Outcome::Applied,
        changed,
        detail,
    })
}

// issue 16
/// What the file of `app` in `env` holds that differs from `content` (the rendered file):
/// hoist owns the whole file, so every object of it is compared both ways, matched by kind and
/// name; a missing or unreadable file, or one that is not YAML, is one drifted `File`.
pub fn drift(
    dir: &Path,
    app: &AppName,
    env: &EnvName,
    content: &str,
) -> Vec<hoist_engine::DriftedObject> {
    use crate::drift::{object_drift, Rendered};
    use hoist_engine::{DriftedField, DriftedObject};
    let path = path(dir, app, env);
    let whole_file = |got: Option<String>| {
        vec![DriftedObject {
            kind: "File".into(),
            name: path.display().to_string(),
            fields: vec![DriftedField {
                path: String::new(),
                want: "the rendered manifests".into(),
                got,
                by: None,
            }],
        }]
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return whole_file(None),
        Err(e) => return whole_file(Some(format!("unreadable: {e}"))),
    };
    let (Ok(want), Ok(got)) = (documents(content), documents(&text)) else {
        return whole_file(Some("not YAML".into()));
    };
    let mut drifted: Vec<DriftedObject> = want
        .iter()
        .filter_map(|((kind, name), object)| {
            let rendered = Rendered {
                kind: kind.clone(),
                name: name.clone(),
                object: object.clone(),
            };
            object_drift(&rendered, got.get(&(kind.clone(), name.clone())), true)
        })
        .collect();
    drifted.extend(
        got.keys()
            .filter(|key| !want.contains_key(*key))
            .map(|(kind, name)| DriftedObject {
                kind: kind.clone(),
                name: name.clone(),
                fields: vec![DriftedField {
                    path: String::new(),
                    want: "absent".into(),
                    got: Some(format!("{kind} {name}")),
                    by: None,
                }],
            }),
    );
    drifted
}

/// The YAML documents of a file as JSON, by kind and name.
fn documents(
    text: &str,
) -> Result<std::collections::BTreeMap<(String, String), serde_json::Value>, serde_yaml_ng::Error> {
    use serde::Deserialize;
    let mut objects = std::collections::BTreeMap::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        objects.insert((kind, name), value);
    }
    Ok(objects)
}
