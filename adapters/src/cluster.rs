//! The kube target: server-side apply of a release's rendered objects under the field manager
//! `hoist`, a rollout wait with `kubectl rollout status`'s rules, and garbage collection of the
//! versioned ConfigMaps and Secrets of releases older than the history limit.
//!
//! Issue 14: a release phase Job (`APP-release-vN`) is applied and awaited before any
//! Deployment: only its completion lets the Deployments, the Service and the Ingress change; its
//! failure is the release's (the previous release keeps serving). Re-applying a version whose
//! Job already completed (a scale change, a resync) does not run it again. Deployments, the
//! Service and the Ingress of hoist's that the release no longer has (a process type a new
//! build dropped, the last domain removed) are deleted.
//!
//! A refusal by the API server (an invalid object, a changed immutable ConfigMap) is an outcome:
//! the release cannot run there, and the report says why. Not reaching the server, or a
//! kubeconfig that does not load, is an error: nothing is known about the release, so nothing is
//! recorded and the next reconcile tries again.

use crate::render::{label_selector, Desired, MANAGER, RELEASE_KEY};
use crate::{Outcome, Report};
use hoist_engine::{AppName, ReleaseVersion};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Versioned ConfigMaps and Secrets of this many releases (the current one included) are kept,
/// so pods of a recent release that are still running keep their config.
pub const HISTORY_LIMIT: u64 = 5;
/// How often a rollout wait asks for the Deployment.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("cluster unreachable while {doing}: {source}")]
    Unreachable {
        doing: String,
        #[source]
        source: kube::Error,
    },
}

/// One env's cluster and namespace.
pub struct Cluster {
    client: Client,
    namespace: String,
}

/// What applying one object would do, for `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: &'static str,
    pub name: String,
    /// `create`, `update` or `unchanged`.
    pub action: &'static str,
}

/// Where a rollout stands, by `kubectl rollout status`'s rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    Complete,
    Progressing(String),
    Failed(String),
}

impl Cluster {
    /// The cluster of the kubeconfig that `KUBECONFIG` (or `~/.kube/config`) names, at `context`
    /// (its current context when `None`).
    pub async fn connect(context: Option<&str>, namespace: &str) -> Result<Self, ClusterError> {
        let kubeconfig = Kubeconfig::read().map_err(|e| ClusterError::Config(e.to_string()))?;
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Cluster {
            client,
            namespace: namespace.to_string(),
        })
    }

    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(&self) -> Api<K>
    where
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Applies `desired` (config first, then the release phase, then the Deployments that read
    /// it, the Service and the Ingress), collects garbage, and with `wait` waits up to that long
    /// for the rollouts. The release phase is always awaited, up to `release_timeout`.
    pub async fn apply(
        &self,
        app: &AppName,
        version: ReleaseVersion,
        desired: &Desired,
        wait: Option<Duration>,
        release_timeout: Duration,
    ) -> Result<Report, ClusterError> {
        let mut changed = Vec::new();
        let failed = |changed: &Vec<String>, message: String| Report {
            outcome: Outcome::Failed,
            changed: !changed.is_empty(),
            detail: message,
        };
        let config = [
            apply_one(&self.api::<ConfigMap>(), &desired.config_map).await,
            match &desired.secret {
                Some(secret) => apply_one(&self.api::<Secret>(), secret).await,
                None => Ok(None),
            },
        ];
        for result in config {
            match result {
                Ok(name) => changed.extend(name),
                Err(ApplyError::Refused(message)) => return Ok(failed(&changed, message)),
                Err(ApplyError::Unreachable(e)) => return Err(e),
            }
        }
        let mut phase = None;
        if let Some(job) = &desired.release_job {
            match apply_one(&self.api::<Job>(), job).await {
                Ok(name) => changed.extend(name),
                Err(ApplyError::Refused(message)) => return Ok(failed(&changed, message)),
                Err(ApplyError::Unreachable(e)) => return Err(e),
            }
            let name = crate::render::release_job_name(app, version);
            match self.wait_for_job(&name, release_timeout).await? {
                Ok(done) => phase = Some(done),
                Err(why) => {
                    return Ok(failed(
                        &changed,
                        format!(
                            "release phase failed: {why}; the Deployments were left as they were"
                        ),
                    ))
                }
            }
        }
        let mut results = Vec::new();
        for deployment in &desired.deployments {
            results.push(apply_one(&self.api::<Deployment>(), deployment).await);
        }
        if let Some(service) = &desired.service {
            results.push(apply_one(&self.api::<Service>(), service).await);
        }
        if let Some(ingress) = &desired.ingress {
            results.push(apply_one(&self.api::<Ingress>(), ingress).await);
        }
        for result in results {
            match result {
                Ok(name) => changed.extend(name),
                Err(ApplyError::Refused(message)) => return Ok(failed(&changed, message)),
                Err(ApplyError::Unreachable(e)) => return Err(e),
            }
        }
        let collected = self.collect_garbage(app, version, desired).await?;
        let mut detail = if changed.is_empty() {
            "unchanged".to_string()
        } else {
            format!("applied {}", changed.join(", "))
        };
        if let Some(phase) = phase {
            detail = format!("{phase}; {detail}");
        }
        if !collected.is_empty() {
            detail.push_str(&format!("; deleted {}", collected.join(", ")));
        }
        let Some(timeout) = wait else {
            return Ok(Report {
                outcome: Outcome::Applied,
                changed: !changed.is_empty(),
                detail,
            });
        };
        let started = Instant::now();
        let mut statuses = Vec::new();
        for deployment in &desired.deployments {
            let name = name_of(deployment);
            let left = timeout.saturating_sub(started.elapsed());
            let (outcome, status) = self.wait_for_rollout(&name, left).await?;
            if outcome == Outcome::Failed {
                return Ok(Report {
                    outcome,
                    changed: !changed.is_empty(),
                    detail: format!("{status}; {detail}"),
                });
            }
            statuses.push(status);
        }
        Ok(Report {
            outcome: Outcome::Healthy,
            changed: !changed.is_empty(),
            detail: format!("{}; {detail}", statuses.join(", ")),
        })
    }

    /// Waits for the release phase's Job `name`: `Ok` with a line saying it completed, `Err`
    /// with why it failed (or did not finish within `timeout`).
    async fn wait_for_job(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Result<String, String>, ClusterError> {
        let jobs = self.api::<Job>();
        let started = Instant::now();
        loop {
            let job = jobs
                .get(name)
                .await
                .map_err(|source| ClusterError::Unreachable {
                    doing: format!("waiting for the release phase job {name}"),
                    source,
                })?;
            match job_status(&job) {
                JobStatus::Complete => {
                    return Ok(Ok(format!("release phase job {name} completed")))
                }
                JobStatus::Failed(why) => return Ok(Err(format!("job {name}: {why}"))),
                JobStatus::Running if started.elapsed() >= timeout => {
                    return Ok(Err(format!(
                        "job {name} did not complete within {timeout:?}"
                    )))
                }
                JobStatus::Running => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn wait_for_rollout(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(Outcome, String), ClusterError> {
        let deployments = self.api::<Deployment>();
        let started = Instant::now();
        loop {
            let deployment =
                deployments
                    .get(name)
                    .await
                    .map_err(|source| ClusterError::Unreachable {
                        doing: format!("waiting for the rollout of deployment {name}"),
                        source,
                    })?;
            match rollout_status(&deployment) {
                RolloutStatus::Complete => {
                    return Ok((
                        Outcome::Healthy,
                        format!("deployment {name} successfully rolled out"),
                    ))
                }
                RolloutStatus::Failed(why) => return Ok((Outcome::Failed, why)),
                RolloutStatus::Progressing(why) if started.elapsed() >= timeout => {
                    return Ok((
                        Outcome::Failed,
                        format!("rollout timed out after {timeout:?}: {why}"),
                    ))
                }
                RolloutStatus::Progressing(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Deletes hoist's versioned ConfigMaps, Secrets and release Jobs of `app` older than the
    /// history limit, and its Deployments, Service and Ingress that `desired` no longer has.
    async fn collect_garbage(
        &self,
        app: &AppName,
        current: ReleaseVersion,
        desired: &Desired,
    ) -> Result<Vec<String>, ClusterError> {
        let oldest_kept = current.get().saturating_sub(HISTORY_LIMIT - 1);
        let old = |version: Option<u64>, _: &str| version.is_some_and(|v| v < oldest_kept);
        let mut deleted = collect::<ConfigMap>(&self.api(), app, old).await?;
        deleted.extend(collect::<Secret>(&self.api(), app, old).await?);
        deleted.extend(collect::<Job>(&self.api(), app, old).await?);
        let kept: Vec<String> = desired.deployments.iter().map(name_of).collect();
        let vanished = |_: Option<u64>, name: &str| !kept.iter().any(|k| k == name);
        deleted.extend(collect::<Deployment>(&self.api(), app, vanished).await?);
        let service = desired.service.as_ref().map(name_of);
        let not_service = |_: Option<u64>, name: &str| service.as_deref() != Some(name);
        deleted.extend(collect::<Service>(&self.api(), app, not_service).await?);
        let ingress = desired.ingress.as_ref().map(name_of);
        let not_ingress = |_: Option<u64>, name: &str| ingress.as_deref() != Some(name);
        deleted.extend(collect::<Ingress>(&self.api(), app, not_ingress).await?);
        Ok(deleted)
    }

    /// What applying `desired` would change: each object compared with the live one (every field
    /// hoist sets must already hold hoist's value; fields the server defaults are ignored).
    pub async fn plan(&self, desired: &Desired) -> Result<Vec<Change>, ClusterError> {
        let mut changes = vec![plan_one(&self.api::<ConfigMap>(), &desired.config_map).await?];
        if let Some(secret) = &desired.secret {
            changes.push(plan_one(&self.api::<Secret>(), secret).await?);
        }
        if let Some(job) = &desired.release_job {
            changes.push(plan_one(&self.api::<Job>(), job).await?);
        }
        for deployment in &desired.deployments {
            changes.push(plan_one(&self.api::<Deployment>(), deployment).await?);
        }
        if let Some(service) = &desired.service {
            changes.push(plan_one(&self.api::<Service>(), service).await?);
        }
        if let Some(ingress) = &desired.ingress {
            changes.push(plan_one(&self.api::<Ingress>(), ingress).await?);
        }
        Ok(changes)
    }

    /// issue 14: the ready replicas of each of `names`' Deployments (`ps`); 0 for one that
    /// does not exist.
    pub async fn ready(&self, names: &[String]) -> Result<Vec<i32>, ClusterError> {
        let deployments = self.api::<Deployment>();
        let mut ready = Vec::new();
        for name in names {
            let live =
                deployments
                    .get_opt(name)
                    .await
                    .map_err(|source| ClusterError::Unreachable {
                        doing: format!("reading deployment {name}"),
                        source,
                    })?;
            ready.push(
                live.and_then(|d| d.status)
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0),
            );
        }
        Ok(ready)
    }
}

/// Where a release phase Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Complete,
    Failed(String),
}

/// A Job's verdict: its `Complete` or `Failed` condition, else its counts (one try).
pub fn job_status(job: &Job) -> JobStatus {
    let status = job.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
            .cloned()
    };
    if condition("Complete").is_some() || status.succeeded.unwrap_or(0) > 0 {
        return JobStatus::Complete;
    }
    if let Some(failed) = condition("Failed") {
        let why = [failed.reason, failed.message]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        return JobStatus::Failed(if why.is_empty() {
            "failed".to_string()
        } else {
            why
        });
    }
    if status.failed.unwrap_or(0) > 0 {
        return JobStatus::Failed("its pod failed".to_string());
    }
    JobStatus::Running
}

// issue 16
impl Cluster {
    /// What of `desired` the cluster no longer holds: each rendered object compared with the
    /// live one, field by field, on the fields hoist's apply sets ([`crate::drift`]).
    pub async fn drift(
        &self,
        desired: &Desired,
    ) -> Result<Vec<hoist_engine::DriftedObject>, ClusterError> {
        use kube::api::DynamicObject;
        let mut drifted = Vec::new();
        for (resource, rendered) in desired.objects() {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
            let live = api
                .get_opt(&rendered.name)
                .await
                .map_err(|source| ClusterError::Unreachable {
                    doing: format!("reading {}/{}", rendered.kind, rendered.name),
                    source,
                })?
                .map(|o| serde_json::to_value(o).expect("objects serialize"));
            drifted.extend(crate::drift::object_drift(&rendered, live.as_ref(), false));
        }
        Ok(drifted)
    }
}

enum ApplyError {
    /// The API server answered, and said no: the release cannot run as rendered.
    Refused(String),
    Unreachable(ClusterError),
}

fn name_of<K: Resource>(object: &K) -> String {
    object.meta().name.clone().unwrap_or_default()
}

/// Server-side applies `object`; `Some("Kind/name")` when the server's copy changed (a no-op
/// apply leaves the resourceVersion as it was).
async fn apply_one<K>(api: &Api<K>, object: &K) -> Result<Option<String>, ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = name_of(object);
    let label = format!("{}/{name}", K::kind(&()));
    let unreachable = |doing: String| {
        move |source| match source {
            kube::Error::Api(status) => ApplyError::Refused(format!(
                "{doing} refused: {} ({})",
                status.message, status.code
            )),
            source => ApplyError::Unreachable(ClusterError::Unreachable { doing, source }),
        }
    };
    let before = api
        .get_opt(&name)
        .await
        .map_err(unreachable(format!("reading {label}")))?
        .and_then(|o| o.meta().resource_version.clone());
    let params = PatchParams::apply(MANAGER).force();
    let after = api
        .patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(unreachable(format!("applying {label}")))?;
    Ok((before.is_none() || before != after.meta().resource_version).then_some(label))
}

/// Deletes hoist's objects of kind `K` of `app` for which `doomed(release label, name)` holds.
async fn collect<K>(
    api: &Api<K>,
    app: &AppName,
    doomed: impl Fn(Option<u64>, &str) -> bool,
) -> Result<Vec<String>, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let kind = K::kind(&());
    let unreachable = |doing: String| move |source| ClusterError::Unreachable { doing, source };
    let list = api
        .list(&ListParams::default().labels(&label_selector(app)))
        .await
        .map_err(unreachable(format!("listing {kind}s of {app}")))?;
    let mut deleted = Vec::new();
    for object in list.items {
        let version = object
            .meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(RELEASE_KEY))
            .and_then(|v| v.parse::<u64>().ok());
        let name = name_of(&object);
        if doomed(version, &name) {
            // A Job's pods go with it.
            api.delete(&name, &DeleteParams::background())
                .await
                .map_err(unreachable(format!("deleting {kind}/{name}")))?;
            deleted.push(format!("{kind}/{name}"));
        }
    }
    Ok(deleted)
}

async fn plan_one<K>(api: &Api<K>, object: &K) -> Result<Change, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = name_of(object);
    let kind = K::kind(&()).to_string().leak();
    let live = api
        .get_opt(&name)
        .await
        .map_err(|source| ClusterError::Unreachable {
            doing: format!("reading {kind}/{name}"),
            source,
        })?;
    let action = match live {
        None => "create",
        Some(live) => {
            let desired = serde_json::to_value(object).expect("objects serialize");
            let live = serde_json::to_value(&live).expect("objects serialize");
            if is_subset(&desired, &live) {
                "unchanged"
            } else {
                "update"
            }
        }
    };
    Ok(Change { kind, name, action })
}

/// Whether every field of `desired` holds the same value in `live` (arrays element by element).
fn is_subset(desired: &serde_json::Value, live: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(d, l)| is_subset(d, l))
        }
        _ => desired == live,
    }
}

/// `kubectl rollout status`'s verdict on a Deployment.
pub fn rollout_status(deployment: &Deployment) -> RolloutStatus {
    let name = name_of(deployment);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutStatus::Progressing(format!(
            "waiting for deployment {name} spec update to be observed"
        ));
    }
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded {
        return RolloutStatus::Failed(format!("deployment {name} exceeded its progress deadline"));
    }
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        return RolloutStatus::Progressing(format!(
            "{updated} of {wanted} updated replicas are available"
        ));
    }
    if replicas > updated {
        return RolloutStatus::Progressing(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return RolloutStatus::Progressing(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    RolloutStatus::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    fn deployment(generation: i64, status: DeploymentStatus) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("api".into());
        d.metadata.generation = Some(generation);
        d.spec.replicas = Some(2);
        d.status = Some(status);
        d
    }

    fn status(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    #[test]
    fn rollout_status_follows_kubectl() {
        let cases = [
            (deployment(2, status(1, 2, 2, 2)), "Progressing"),
            (deployment(2, status(2, 2, 1, 1)), "Progressing"),
            (deployment(2, status(2, 3, 2, 2)), "Progressing"),
            (deployment(2, status(2, 2, 2, 1)), "Progressing"),
            (deployment(2, status(2, 2, 2, 2)), "Complete"),
        ];
        for (d, expected) in cases {
            let got = match rollout_status(&d) {
                RolloutStatus::Complete => "Complete",
                RolloutStatus::Progressing(_) => "Progressing",
                RolloutStatus::Failed(_) => "Failed",
            };
            assert_eq!(got, expected, "{:?}", d.status);
        }
        let mut stuck = status(2, 2, 1, 0);
        stuck.conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            ..DeploymentCondition::default()
        }]);
        assert_eq!(
            rollout_status(&deployment(2, stuck)),
            RolloutStatus::Failed("deployment api exceeded its progress deadline".into())
        );
    }

    /// issue 14: the release phase's verdicts, as a Job's status says them.
    #[test]
    fn a_release_job_is_complete_failed_or_still_running() {
        use k8s_openapi::api::batch::v1::{JobCondition, JobStatus as Status};
        let job = |status: Status| Job {
            status: Some(status),
            ..Job::default()
        };
        let condition = |kind: &str, reason: &str| JobCondition {
            type_: kind.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some("Job has reached the specified backoff limit".into()),
            ..JobCondition::default()
        };
        assert_eq!(job_status(&job(Status::default())), JobStatus::Running);
        let active = Status {
            active: Some(1),
            ..Status::default()
        };
        assert_eq!(job_status(&job(active)), JobStatus::Running);
        let done = Status {
            succeeded: Some(1),
            ..Status::default()
        };
        assert_eq!(job_status(&job(done)), JobStatus::Complete);
        let failed = Status {
            failed: Some(1),
            conditions: Some(vec![condition("Failed", "BackoffLimitExceeded")]),
            ..Status::default()
        };
        assert_eq!(
            job_status(&job(failed)),
            JobStatus::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        let pod_failed = Status {
            failed: Some(1),
            ..Status::default()
        };
        assert_eq!(
            job_status(&job(pod_failed)),
            JobStatus::Failed("its pod failed".into())
        );
    }

    #[test]
    fn plan_compares_only_what_hoist_sets() {
        let desired = serde_json::json!({"data": {"A": "1"}, "metadata": {"name": "x"}});
        let live = serde_json::json!({"data": {"A": "1"}, "metadata": {"name": "x", "uid": "u"}});
        assert!(is_subset(&desired, &live));
        let changed = serde_json::json!({"data": {"A": "2"}, "metadata": {"name": "x"}});
        assert!(!is_subset(&desired, &changed));
    }
}
