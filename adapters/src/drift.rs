//! Drift (issue 16): what a target holds that differs from what a release renders, field by
//! field, generically over whatever objects the renderer produces (compared as JSON, matched by
//! kind and name).
//!
//! - **kube**: only the fields hoist manages are compared: those its server-side apply sets
//!   (the rendered object's leaves, which the API server records in `managedFields` under the
//!   field manager `hoist`). A field only another manager sets (an HPA's `spec.replicas`, an
//!   annotation a tool adds, a sidecar an injector appends) is not drift. A rendered field whose
//!   live value differs is, whoever changed it; `managedFields` names the manager that now owns
//!   it (`by`). What the server adds (status, uid, resourceVersion, defaults) is never compared.
//! - **manifests**: hoist owns the whole file, so the comparison goes both ways: a field added
//!   to a rendered object, one changed or removed, an object missing, or a file that is not the
//!   rendered YAML is drift.
//! - **exec**: a hook is a black box; it has no drift detection.
//!
//! Values are compared and reported as JSON text; a Secret's values are `<redacted>` (its
//! data is compared, never shown).

use crate::render::MANAGER;
use hoist_engine::{ConfigValue, DriftedField, DriftedObject};
use serde_json::Value;
use std::collections::BTreeMap;

/// One rendered object: its kind, name and JSON.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub kind: String,
    pub name: String,
    pub object: Value,
}

/// Where a field is: `spec.template.spec.containers[name=api].image`.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The element of `list` that `item` stands for: by its `name` when it has one (an
/// associative list, as server-side apply merges containers, ports, env), else by position.
fn counterpart<'a>(list: &'a [Value], item: &Value, index: usize) -> (String, Option<&'a Value>) {
    match item.get("name").and_then(Value::as_str) {
        Some(name) => (
            format!("[name={name}]"),
            list.iter()
                .find(|other| other.get("name").and_then(Value::as_str) == Some(name)),
        ),
        None => (format!("[{index}]"), list.get(index)),
    }
}

/// Every leaf of `want` whose value `got` does not hold (a list of scalars is one leaf: it is
/// applied whole). With `both_ways`, also every leaf of `got` that `want` does not have.
pub fn compare(
    want: &Value,
    got: Option<&Value>,
    both_ways: bool,
) -> Vec<(String, Value, Option<Value>)> {
    let mut found = Vec::new();
    walk("", want, got, &mut found);
    if both_ways {
        if let Some(got) = got {
            let mut extra = Vec::new();
            walk("", got, Some(want), &mut extra);
            // A leaf `got` has and `want` lacks: wanted absent.
            for (path, value, counterpart) in extra {
                if counterpart.is_none() {
                    found.push((path, Value::Null, Some(value)));
                }
            }
        }
    }
    found
}

fn walk(
    path: &str,
    want: &Value,
    got: Option<&Value>,
    found: &mut Vec<(String, Value, Option<Value>)>,
) {
    match want {
        Value::Object(fields) if !fields.is_empty() => {
            for (key, value) in fields {
                let inner = got.and_then(|g| g.get(key));
                walk(&join(path, key), value, inner, found);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let list = got
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for (index, item) in items.iter().enumerate() {
                let (at, other) = counterpart(list, item, index);
                walk(&format!("{path}{at}"), item, other, found);
            }
        }
        leaf => {
            if got != Some(leaf) {
                found.push((path.to_string(), leaf.clone(), got.cloned()));
            }
        }
    }
}

/// The managers `managedFields` says own each field path, other than hoist: `fieldsV1`'s
/// `f:key` / `k:{"name":…}` / `i:N` keys turned into the paths [`compare`] writes.
pub fn other_owners(live: &Value) -> BTreeMap<String, Vec<String>> {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for entry in entries {
        let Some(manager) = entry.get("manager").and_then(Value::as_str) else {
            continue;
        };
        if manager == MANAGER {
            continue;
        }
        let mut paths = Vec::new();
        if let Some(fields) = entry.get("fieldsV1") {
            owned_paths("", fields, &mut paths);
        }
        for path in paths {
            owners.entry(path).or_default().push(manager.to_string());
        }
    }
    owners
}

fn owned_paths(path: &str, fields: &Value, out: &mut Vec<String>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    if map.is_empty() && !path.is_empty() {
        out.push(path.to_string());
    }
    for (key, inner) in map {
        let next = if let Some(field) = key.strip_prefix("f:") {
            join(path, field)
        } else if let Some(item) = key.strip_prefix("k:") {
            match serde_json::from_str::<Value>(item)
                .ok()
                .and_then(|k| k.get("name").and_then(Value::as_str).map(str::to_string))
            {
                Some(name) => format!("{path}[name={name}]"),
                None => continue,
            }
        } else if let Some(index) = key.strip_prefix("i:") {
            format!("{path}[{index}]")
        } else {
            // "." (the item itself) and "v:" (set values): nothing more precise to name.
            continue;
        };
        owned_paths(&next, inner, out);
    }
}

/// The longest value a drift shows whole: a drift is an event, and an event stays small.
const SHOWN_BYTES: usize = 256;

/// How a value is shown in a drift: JSON text, a Secret's data redacted, a long value cut
/// (`…` and its size in bytes).
fn shown(kind: &str, path: &str, value: &Value) -> String {
    let secret = kind == "Secret" && (path.starts_with("data") || path.starts_with("stringData"));
    if secret {
        return ConfigValue::REDACTED.to_string();
    }
    let text = value.to_string();
    if text.len() <= SHOWN_BYTES {
        return text;
    }
    let mut cut = SHOWN_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// The drift of one rendered object from what the target holds (`None`: it is missing).
/// `both_ways`: the target should hold nothing else (a manifests file).
pub fn object_drift(
    rendered: &Rendered,
    live: Option<&Value>,
    both_ways: bool,
) -> Option<DriftedObject> {
    let kind = rendered.kind.as_str();
    let fields: Vec<DriftedField> = match live {
        None => vec![DriftedField {
            path: String::new(),
            want: format!("{kind} {}", rendered.name),
            got: None,
            by: None,
        }],
        Some(live) => {
            let owners = other_owners(live);
            compare(&rendered.object, Some(live), both_ways)
                .into_iter()
                .map(|(path, want, got)| {
                    let by = owners
                        .iter()
                        .filter(|(owned, _)| {
                            path == **owned
                                || path.starts_with(&format!("{owned}."))
                                || path.starts_with(&format!("{owned}["))
                        })
                        .flat_map(|(_, managers)| managers.iter().cloned())
                        .next();
                    DriftedField {
                        want: if want.is_null() && both_ways {
                            "absent".to_string()
                        } else {
                            shown(kind, &path, &want)
                        },
                        got: got.as_ref().map(|g| shown(kind, &path, g)),
                        path,
                        by,
                    }
                })
                .collect()
        }
    };
    (!fields.is_empty()).then(|| DriftedObject {
        kind: rendered.kind.clone(),
        name: rendered.name.clone(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(object: Value) -> Rendered {
        Rendered {
            kind: object["kind"].as_str().unwrap_or("Deployment").to_string(),
            name: "api".into(),
            object,
        }
    }

    #[test]
    fn only_the_fields_hoist_renders_are_compared_and_lists_match_by_name() {
        let want = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "a", "envFrom": [{"configMapRef": {"name": "api-config-v2"}}]}
        ]}}}});
        let live = json!({"kind": "Deployment", "metadata": {"uid": "u", "managedFields": [
                {"manager": "hoist", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
                {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                    "f:containers": {"k:{\"name\":\"api\"}": {".": {}, "f:image": {}}}}}}}},
                {"manager": "hpa", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "s"},
                {"name": "api", "image": "evil", "envFrom": [{"configMapRef": {"name": "api-config-v2"}}]}
            ]}}}, "status": {"replicas": 5}});
        let drift = object_drift(&rendered(want.clone()), Some(&live), false).unwrap();
        assert_eq!(
            drift.fields,
            vec![DriftedField {
                path: "spec.template.spec.containers[name=api].image".into(),
                want: "\"a\"".into(),
                got: Some("\"evil\"".into()),
                by: Some("kubectl-edit".into()),
            }]
        );
        assert!(object_drift(&rendered(want.clone()), Some(&want), false).is_none());
        let missing = object_drift(&rendered(want), None, false).unwrap();
        assert_eq!(missing.fields[0].got, None);
    }

    #[test]
    fn a_long_value_is_cut_and_its_size_named() {
        let long = Value::String("é".repeat(300));
        let text = shown("ConfigMap", "data.A", &long);
        assert!(text.ends_with("… (602 bytes)"), "{text}");
        assert!(text.len() < SHOWN_BYTES + 20);
    }

    #[test]
    fn a_file_must_hold_exactly_the_rendered_object_and_secrets_are_redacted() {
        let want =
            json!({"kind": "Secret", "data": {"K": "czNjcjN0"}, "metadata": {"name": "api"}});
        let got = json!({"kind": "Secret", "data": {"K": "b3RoZXI="}, "metadata": {"name": "api", "labels": {"x": "y"}}});
        let drift = object_drift(&rendered(want), Some(&got), true).unwrap();
        let shown: Vec<(&str, &str, Option<&str>)> = drift
            .fields
            .iter()
            .map(|f| (f.path.as_str(), f.want.as_str(), f.got.as_deref()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("data.K", "<redacted>", Some("<redacted>")),
                ("metadata.labels.x", "absent", Some("\"y\"")),
            ]
        );
    }
}
