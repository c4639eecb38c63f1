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
