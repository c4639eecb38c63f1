//! A Kubernetes API-server stand-in: real HTTP/1.1 on 127.0.0.1, in the test process, serving
//! exactly what hoist's kube target uses, so the real kube-rs client in the real `hoist` binary
//! talks to it through a kubeconfig.
//!
//! **What it is**: namespaced ConfigMaps, Secrets and Deployments (apps/v1): server-side-apply
//! PATCH, GET, list with a `k=v,…` label selector, DELETE; resourceVersion bumped only when an
//! object changes (a no-op apply leaves it as is, as a real server does); Deployment generation
//! bumped when its spec changes; errors as `Status` objects with the real codes: a PATCH that is
//! not `application/apply-patch+yaml` → 415, an apply without `fieldManager` → 422 (the real
//! server's PatchOptions validation), a name that is not a DNS-1123 subdomain → 422, a body whose
//! name differs from the URL's → 400, changing the data of an `immutable` ConfigMap/Secret (or
//! making it mutable again) → 422, GET/DELETE of a missing object → 404. Deployment status is
//! driven by the test: an image marked broken never becomes available and reports
//! `Progressing=False, ProgressDeadlineExceeded`; any other image completes its rollout 200 ms
//! after its spec changed.
//!
//! **Field ownership** (issue 16): `metadata.managedFields` per field manager, as server-side
//! apply keeps it. A manager's apply owns exactly the fields it sends (fields it sent before and
//! no longer sends are dropped, unless another manager owns them too) and, forced, takes over
//! those another manager holds with a different value (the same value is shared). A
//! `application/merge-patch+json` PATCH is an Update by its `fieldManager` (`kubectl edit`): the
//! fields it changes become that manager's and leave every other's. Lists of objects are matched
//! by position, and a `name` key only names an item in `fieldsV1` (`k:{"name":…}`).
//!
//! **What it is not**: no watch, no defaulting, no schema validation
//! beyond names, no auth (the bearer token is ignored), no pods or ReplicaSets, no HTTP/2, no TLS.
//!
//! Issue 14 adds Services (v1), Ingresses (networking.k8s.io/v1) and Jobs (batch/v1), served
//! like the others. A Job's spec cannot change once created (422, as its template is immutable
//! on a real server); it completes 200 ms after it was created (`Complete=True`, `succeeded: 1`)
//! unless the test made its command fail ([`ApiServer::fail_command`]): then `Failed=True`,
//! reason `BackoffLimitExceeded`. Every Job created is counted ([`ApiServer::jobs_created`]).

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROLLOUT_TIME: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
}

struct Stored {
    object: Value,
    /// When a Deployment's spec last changed: its rollout starts then.
    changed_at: Instant,
    /// Each field manager's fields with their values, and its operation (`Apply`, `Update`).
    managers: BTreeMap<String, (&'static str, Value)>,
}

#[derive(Default)]
struct State {
    /// (resource, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Stored>,
    resource_version: u64,
    broken_images: BTreeSet<String>,
    requests: Vec<Request>,
    // issue 14
    failing_commands: BTreeSet<String>,
    jobs_created: Vec<String>,
}

#[derive(Clone)]
pub struct ApiServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl ApiServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let server = ApiServer {
            port,
            state: Arc::default(),
        };
        let accepted = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = accepted.clone();
                std::thread::spawn(move || server.connection(stream));
            }
        });
        server
    }

    /// A kubeconfig pointing at this server, as `kubectl` would read it.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: tester\ncurrent-context: standin\nusers:\n- name: tester\n  user:\n    token: test-token\n",
            self.port
        )
    }

    /// Pods of `image` never become available.
    pub fn break_image(&self, image: &str) {
        self.state
            .lock()
            .unwrap()
            .broken_images
            .insert(image.to_string());
    }

    /// issue 14: Jobs whose container runs `command` (`sh -c COMMAND`) fail.
    pub fn fail_command(&self, command: &str) {
        self.state
            .lock()
            .unwrap()
            .failing_commands
            .insert(command.to_string());
    }

    /// issue 14: the names of the Jobs created so far, in order (a Job applied again is not
    /// created again).
    pub fn jobs_created(&self) -> Vec<String> {
        self.state.lock().unwrap().jobs_created.clone()
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        state
            .objects
            .get(&key)
            .map(|s| state.with_status(&key.0, s))
    }

    pub fn names(&self, resource: &str, namespace: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .keys()
            .filter(|(r, ns, _)| r == resource && ns == namespace)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    fn connection(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut writer = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
                return;
            };
            let (method, target) = (method.to_string(), target.to_string());
            let mut headers = BTreeMap::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path.to_string(), parse_query(query)),
                None => (target.clone(), BTreeMap::new()),
            };
            let request = Request {
                method,
                path,
                query,
                content_type: headers.get("content-type").cloned(),
            };
            let (code, response) = self.handle(&request, &body);
            let body = response.to_string();
            let reply = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                reason(code),
                body.len()
            );
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn handle(&self, request: &Request, body: &[u8]) -> (u16, Value) {
        let mut state = self.state.lock().unwrap();
        state.requests.push(request.clone());
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        // /api/v1/namespaces/NS/RES[/NAME] or /apis/apps/v1/namespaces/NS/RES[/NAME]
        let rest = match segments.as_slice() {
            ["api", "v1", rest @ ..] => rest,
            ["apis", "apps", "v1", rest @ ..] => rest,
            // issue 14
            ["apis", "batch", "v1", rest @ ..] => rest,
            ["apis", "networking.k8s.io", "v1", rest @ ..] => rest,
            _ => {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            }
        };
        let (namespace, resource, name) = match rest {
            ["namespaces", ns, res] => (*ns, *res, None),
            ["namespaces", ns, res, name] => (*ns, *res, Some(*name)),
            _ => {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            }
        };
        let served = [
            "configmaps",
            "secrets",
            "deployments",
            // issue 14
            "services",
            "ingresses",
            "jobs",
        ];
        if !served.contains(&resource) {
            return status(
                404,
                "NotFound",
                &format!("resource {resource} is not served"),
            );
        }
        let key = |name: &str| {
            (
                resource.to_string(),
                namespace.to_string(),
                name.to_string(),
            )
        };
        match (request.method.as_str(), name) {
            ("GET", None) => {
                let selector = request
                    .query
                    .get("labelSelector")
                    .cloned()
                    .unwrap_or_default();
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|((r, ns, _), s)| {
                        r == resource && ns == namespace && matches(&s.object, &selector)
                    })
                    .map(|((r, _, _), s)| state.with_status(r, s))
                    .collect();
                let kind = format!("{}List", kind_of(resource));
                (
                    200,
                    json!({"apiVersion": api_version(resource), "kind": kind,
                    "metadata": {"resourceVersion": state.resource_version.to_string()}, "items": items}),
                )
            }
            ("GET", Some(name)) => match state.objects.get(&key(name)) {
                Some(stored) => (200, state.with_status(resource, stored)),
                None => not_found(resource, name),
            },
            ("DELETE", Some(name)) => match state.objects.remove(&key(name)) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => not_found(resource, name),
            },
            ("PATCH", Some(name))
                if request.content_type.as_deref() == Some("application/merge-patch+json") =>
            {
                state.update(request, resource, namespace, name, body)
            }
            ("PATCH", Some(name)) => state.apply(request, resource, namespace, name, body),
            _ => status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
        }
    }
}

impl State {
    fn apply(
        &mut self,
        request: &Request,
        resource: &str,
        namespace: &str,
        name: &str,
        body: &[u8],
    ) -> (u16, Value) {
        if request.content_type.as_deref() != Some("application/apply-patch+yaml") {
            return status(415, "UnsupportedMediaType", &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {:?})",
                request.content_type
            ));
        }
        if request
            .query
            .get("fieldManager")
            .is_none_or(|m| m.is_empty())
        {
            return invalid("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
        }
        if !is_dns_subdomain(name) {
            return invalid(&format!(
                "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                kind_of(resource)
            ));
        }
        // The apply body is YAML; kube-rs sends its JSON subset.
        let Ok(applied) = serde_json::from_slice::<Value>(body) else {
            return status(400, "BadRequest", "the apply body is not valid YAML/JSON");
        };
        if applied["metadata"]["name"] != json!(name) {
            return status(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            );
        }
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let existing = self.objects.get(&key);
        if let Some(existing) = existing {
            let old = &existing.object;
            if old["immutable"] == json!(true)
                && (applied["data"] != old["data"]
                    || applied.get("immutable") != Some(&json!(true)))
            {
                return invalid(&format!(
                    "{} \"{name}\" is invalid: data: Forbidden: field is immutable when `immutable` is set",
                    kind_of(resource)
                ));
            }
            if resource == "jobs" && old["spec"] != applied["spec"] {
                return invalid(&format!(
                    "Job.batch \"{name}\" is invalid: spec.template: Invalid value: field is immutable"
                ));
            }
        }
        if resource == "jobs" && existing.is_none() {
            self.jobs_created.push(name.to_string());
        }
        let manager = request.query["fieldManager"].clone();
        let mut managers = existing.map(|e| e.managers.clone()).unwrap_or_default();
        // Forced: the fields this apply sets leave every other manager holding another value.
        let sent = leaves(&applied);
        for (other, (_, fields)) in managers.iter_mut() {
            if *other == manager {
                continue;
            }
            for (path, value) in &sent {
                if get_path(fields, path).is_some_and(|held| held != value) {
                    remove_path(fields, path);
                }
            }
        }
        managers.insert(manager, ("Apply", applied));
        managers.retain(|_, (_, fields)| fields.as_object().is_some_and(|o| !o.is_empty()));
        self.store(resource, namespace, name, managers)
    }

    /// A merge patch by `fieldManager` (an Update, as `kubectl edit` makes): the fields it
    /// changes become that manager's.
    fn update(
        &mut self,
        request: &Request,
        resource: &str,
        namespace: &str,
        name: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let Some(existing) = self.objects.get(&key) else {
            return not_found(resource, name);
        };
        let Ok(patch) = serde_json::from_slice::<Value>(body) else {
            return status(400, "BadRequest", "the patch is not valid JSON");
        };
        let manager = request
            .query
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let before = owned_view(&existing.object);
        let mut after = before.clone();
        merge_patch(&mut after, &patch);
        let (old, new) = (leaves(&before), leaves(&after));
        let mut managers = existing.managers.clone();
        for (path, value) in &new {
            if old.iter().any(|(p, v)| p == path && v == value) {
                continue;
            }
            for (_, fields) in managers.values_mut() {
                remove_path(fields, path);
            }
            let entry = managers
                .entry(manager.clone())
                .or_insert(("Update", json!({})));
            set_path(&mut entry.1, path, value.clone());
        }
        for (path, _) in &old {
            if !new.iter().any(|(p, _)| p == path) {
                for (_, fields) in managers.values_mut() {
                    remove_path(fields, path);
                }
            }
        }
        managers.retain(|_, (_, fields)| fields.as_object().is_some_and(|o| !o.is_empty()));
        self.store(resource, namespace, name, managers)
    }

    /// The object every manager's fields make, stored (a new resourceVersion only when it
    /// changed, a new generation when a Deployment's spec did).
    fn store(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        managers: BTreeMap<String, (&'static str, Value)>,
    ) -> (u16, Value) {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        let existing = self.objects.get(&key);
        let mut object = json!({});
        for (_, fields) in managers.values() {
            deep_merge(&mut object, fields);
        }
        object["metadata"]["namespace"] = json!(namespace);
        let managed: Vec<Value> = managers
            .iter()
            .map(|(manager, (operation, fields))| {
                json!({"manager": manager, "operation": operation,
                    "apiVersion": api_version(resource), "fieldsType": "FieldsV1",
                    "fieldsV1": fields_v1(fields, &object)})
            })
            .collect();
        object["metadata"]["managedFields"] = Value::Array(managed);
        let unchanged = existing.is_some_and(|e| strip(&e.object) == strip(&object));
        if unchanged {
            let stored = existing.unwrap();
            return (200, self.with_status(resource, stored));
        }
        self.resource_version += 1;
        let (generation, spec_changed) = match existing {
            Some(e) => {
                let generation = e.object["metadata"]["generation"].as_i64().unwrap_or(1);
                let spec_changed = e.object["spec"] != object["spec"];
                (
                    if spec_changed {
                        generation + 1
                    } else {
                        generation
                    },
                    spec_changed,
                )
            }
            None => (1, true),
        };
        let uid = existing
            .map(|e| e.object["metadata"]["uid"].clone())
            .unwrap_or_else(|| json!(format!("uid-{}", self.resource_version)));
        let changed_at = match existing {
            Some(e) if !spec_changed => e.changed_at,
            _ => Instant::now(),
        };
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        meta.insert("uid".into(), uid);
        if resource == "deployments" {
            meta.insert("generation".into(), json!(generation));
        }
        self.objects.insert(
            key.clone(),
            Stored {
                object,
                changed_at,
                managers,
            },
        );
        (200, self.with_status(resource, &self.objects[&key]))
    }

    /// The object with a Deployment's status as its (test-driven) rollout has it now.
    fn with_status(&self, resource: &str, stored: &Stored) -> Value {
        let mut object = stored.object.clone();
        if resource == "jobs" {
            let command = object["spec"]["template"]["spec"]["containers"][0]["command"][2]
                .as_str()
                .unwrap_or_default()
                .to_string();
            object["status"] = if self.failing_commands.contains(&command) {
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                    "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
            } else if stored.changed_at.elapsed() < ROLLOUT_TIME {
                json!({"active": 1})
            } else {
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            };
            return object;
        }
        if resource != "deployments" {
            return object;
        }
        let generation = object["metadata"]["generation"].clone();
        let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
        let image = object["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        object["status"] = if self.broken_images.contains(&image) {
            json!({"observedGeneration": generation, "replicas": wanted + 1, "updatedReplicas": 1,
                "availableReplicas": wanted, "unavailableReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                    "message": "ReplicaSet has timed out progressing."}]})
        } else if stored.changed_at.elapsed() < ROLLOUT_TIME {
            json!({"observedGeneration": generation, "replicas": wanted, "updatedReplicas": wanted,
                "availableReplicas": 0, "unavailableReplicas": wanted})
        } else {
            json!({"observedGeneration": generation, "replicas": wanted, "updatedReplicas": wanted,
                "availableReplicas": wanted, "readyReplicas": wanted,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
        };
        object
    }
}

/// One step of a field's path: an object's key or a list's position.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    At(usize),
}

/// Every field of `value` with its value: objects and lists of objects are walked, anything
/// else (a scalar, a list of scalars, an empty object or list) is one field.
fn leaves(value: &Value) -> Vec<(Vec<Step>, Value)> {
    fn walk(path: &mut Vec<Step>, value: &Value, out: &mut Vec<(Vec<Step>, Value)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(Step::Key(k.clone()));
                    walk(path, v, out);
                    path.pop();
                }
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(Step::At(i));
                    walk(path, v, out);
                    path.pop();
                }
            }
            leaf => out.push((path.clone(), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk(&mut Vec::new(), value, &mut out);
    out
}

fn get_path<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::At(i) => v.get(i),
    })
}

fn set_path(value: &mut Value, path: &[Step], leaf: Value) {
    let Some((step, rest)) = path.split_first() else {
        *value = leaf;
        return;
    };
    let inner = match step {
        Step::Key(k) => {
            if !value.is_object() {
                *value = json!({});
            }
            value
                .as_object_mut()
                .unwrap()
                .entry(k.clone())
                .or_insert(Value::Null)
        }
        Step::At(i) => {
            if !value.is_array() {
                *value = json!([]);
            }
            let items = value.as_array_mut().unwrap();
            while items.len() <= *i {
                items.push(json!({}));
            }
            &mut items[*i]
        }
    };
    set_path(inner, rest, leaf);
}

/// Whether a removal left nothing here.
fn is_emptied(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.is_empty())
        || value.as_array().is_some_and(|a| a.is_empty())
}

/// Removes the field at `path`, and the objects and lists it leaves empty.
fn remove_path(value: &mut Value, path: &[Step]) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    match (step, value) {
        (Step::Key(k), Value::Object(map)) => {
            if rest.is_empty() {
                map.remove(k);
            } else if let Some(inner) = map.get_mut(k) {
                remove_path(inner, rest);
                if is_emptied(inner) {
                    map.remove(k);
                }
            }
        }
        (Step::At(i), Value::Array(items)) => {
            if let Some(inner) = items.get_mut(*i) {
                if rest.is_empty() {
                    *inner = json!({});
                } else {
                    remove_path(inner, rest);
                }
            }
            // Trailing items left empty go; earlier ones keep the positions of the rest.
            while items.last().is_some_and(is_emptied) {
                items.pop();
            }
        }
        _ => {}
    }
}

/// `from`'s fields set into `into`: objects key by key, lists of objects item by item.
fn deep_merge(into: &mut Value, from: &Value) {
    for (path, leaf) in leaves(from) {
        set_path(into, &path, leaf);
    }
}

/// RFC 7386: `null` removes, objects merge, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The fields managers own: the object without what the server adds.
fn owned_view(object: &Value) -> Value {
    let mut object = strip(object);
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("managedFields");
        meta.remove("namespace");
    }
    object
}

/// `fieldsV1` of a manager's `fields` in the object `whole`: `f:key` for a field,
/// `k:{"name":…}` for a list item the whole object names (else `i:N`), `{}` for a leaf.
fn fields_v1(fields: &Value, whole: &Value) -> Value {
    match fields {
        Value::Object(map) if !map.is_empty() => Value::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), fields_v1(v, &whole[k])))
                .collect(),
        ),
        Value::Array(items) if items.iter().any(Value::is_object) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let named = whole[i].get("name").or(item.get("name"));
                    let key = match named.and_then(Value::as_str) {
                        Some(name) => format!("k:{}", json!({"name": name})),
                        None => format!("i:{i}"),
                    };
                    let mut inner = fields_v1(item, &whole[i]);
                    if let Some(o) = inner.as_object_mut() {
                        o.insert(".".into(), json!({}));
                    }
                    (key, inner)
                })
                .collect(),
        ),
        _ => json!({}),
    }
}

/// An object without what the server adds, to compare an apply with what is stored.
fn strip(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in ["resourceVersion", "uid", "generation"] {
            meta.remove(field);
        }
    }
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    object
}

fn matches(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => object["metadata"]["labels"][k] == json!(v),
            None => false,
        })
}

fn is_dns_subdomain(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        // issue 14
        "services" => "Service",
        "ingresses" => "Ingress",
        "jobs" => "Job",
        _ => "Deployment",
    }
}

fn api_version(resource: &str) -> &'static str {
    match resource {
        "deployments" => "apps/v1",
        // issue 14
        "jobs" => "batch/v1",
        "ingresses" => "networking.k8s.io/v1",
        _ => "v1",
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code}),
    )
}

fn invalid(message: &str) -> (u16, Value) {
    status(422, "Invalid", message)
}

fn not_found(resource: &str, name: &str) -> (u16, Value) {
    status(404, "NotFound", &format!("{resource} \"{name}\" not found"))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Error",
    }
}

/// One raw HTTP request, for checking the stand-in's own rejections.
pub fn raw(port: u16, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let mut reader = BufReader::new(stream);
    reader.read_line(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (code, serde_json::from_slice(&body).unwrap())
}
