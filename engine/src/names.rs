//! Validated names and identifiers. Each newtype can only hold a value that passed its rule, so
//! the rest of the engine never re-checks input and every rejection names the field and the rule.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Input that broke a rule: names the field, the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {rule}")]
pub struct ValidationError {
    pub field: &'static str,
    pub value: String,
    pub rule: &'static str,
}

impl ValidationError {
    pub fn new(field: &'static str, value: impl Into<String>, rule: &'static str) -> Self {
        ValidationError {
            field,
            value: value.into(),
            rule,
        }
    }
}

/// How large free text and config may be. A release is copied whole into every event that makes
/// one (and onto every JetStream message, every export line, every hook's stdin), so each bound
/// keeps one command from making the log, a terminal table or a target unusable. Sizes are bytes
/// of UTF-8; a secret counts by its clear text.
pub mod limits {
    /// One config value: more than a certificate bundle or a JSON document of settings needs.
    pub const CONFIG_VALUE_BYTES: usize = 32 * 1024;
    /// A release's whole config, keys and values: a Kubernetes ConfigMap holds at most 1 MiB, and
    /// the release travels in one NATS message (1 MiB by default) beside its envelope.
    pub const RELEASE_CONFIG_BYTES: usize = 256 * 1024;
    /// A lock reason, a build's note: a sentence or a paragraph, not a document.
    pub const REASON_BYTES: usize = 1024;
    pub const NOTE_BYTES: usize = 1024;
    /// A build's commit: a hash or a ref name.
    pub const COMMIT_BYTES: usize = 256;
    /// An exec target's command, a manifests directory (the longest path Linux opens).
    pub const COMMAND_BYTES: usize = 4096;
    pub const PATH_BYTES: usize = 4096;
    /// A config key: a ConfigMap or Secret key may not be longer, and every config key becomes
    /// one. Checked where a key is set, not when one is read: history written before this limit
    /// still decodes.
    pub const CONFIG_KEY_BYTES: usize = 253;
    /// A variable `--exec-env` forwards (part of the name's rule: no history predates it).
    pub const VAR_NAME_BYTES: usize = 253;
    /// A kube context's name (a DNS subdomain at most).
    pub const CONTEXT_BYTES: usize = 253;
    /// Variables one exec target forwards (`--exec-env`).
    pub const PASS_ENV_NAMES: usize = 64;
    /// A token's name (`--name`): a label, like "CI" or "ana's laptop".
    pub const TOKEN_NAME_BYTES: usize = 128;
    /// The front end an event came through (`via`): `api`, `web`, a chat user's id.
    pub const VIA_BYTES: usize = 256;
    /// A release's description, which hoist writes (`Set A, B, …`): longer key lists are cut
    /// and counted (`… and 12 more`).
    pub const DESCRIPTION_BYTES: usize = 1024;
}

const DNS_LABEL_RULE: &str =
    "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr, $rule:expr) => {
        string_newtype!($(#[$doc])* $name, $field, $check, $rule, stored: $check);
    };
    // `stored`: what the log may hold (read back through serde: export lines, read models),
    // which for an app name is one more than people may type.
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr, $rule:expr, stored: $stored:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        // Shared, immutable text: folds copy names into many records, and a clone is a count.
        pub struct $name(Arc<str>);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, ValidationError> {
                let stored: fn(&str) -> bool = $stored;
                if stored(&value) {
                    Ok($name(value.into()))
                } else {
                    Err(ValidationError { field: $field, value, rule: $rule })
                }
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, ValidationError> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.into()))
                } else {
                    Err(ValidationError { field: $field, value: s.to_owned(), rule: $rule })
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// An application's name: a DNS label. The log also names one chain that is no app's,
    /// [`AppName::access`], which what people type (`FromStr`) can never name; what the log
    /// holds (serde, [`AppName::from_log`]) can.
    AppName, "app name", is_dns_label, DNS_LABEL_RULE,
    stored: |s| is_dns_label(s) || s == AppName::ACCESS
);

impl AppName {
    /// The key of the access chain: identities' tokens, grants and chat links, hash-chained,
    /// exported and imported like an app's events. A DNS label never starts with `_`, so no app
    /// can take it.
    pub const ACCESS: &'static str = "_access";

    /// The access chain's key.
    pub fn access() -> Self {
        AppName(Self::ACCESS.into())
    }

    /// Whether this is the access chain, not an app.
    pub fn is_access(&self) -> bool {
        &*self.0 == Self::ACCESS
    }

    /// A chain's name as the log holds it: an app's, or the access chain's. What people type
    /// goes through `FromStr`, which takes app names only.
    pub fn from_log(name: &str) -> Result<Self, ValidationError> {
        Self::try_from(name.to_owned())
    }
}
string_newtype!(
    /// An environment's name within an app's pipeline: a DNS label.
    EnvName, "env name", is_dns_label, DNS_LABEL_RULE
);
string_newtype!(
    /// A subscriber's name (issue 11): a DNS label, so it can name a file and a subject.
    HookName, "hook name", is_dns_label, DNS_LABEL_RULE
);
/// A name a shell accepts for a variable, and Kubernetes for a ConfigMap key.
fn is_variable_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

string_newtype!(
    /// A config variable's name, as a shell would accept it. Its length is a limit `decide`
    /// keeps ([`limits::CONFIG_KEY_BYTES`]), not part of the type: a name is also what a stored
    /// commit decodes into, and history written before the limit must still decode.
    ConfigKey, "config key", is_variable_name, "must match [A-Za-z_][A-Za-z0-9_]*"
);
string_newtype!(
    /// The name of a variable of hoist's own environment that an exec target hands on to its
    /// hook (`--exec-env NAME`).
    VarName,
    "--exec-env",
    |s| is_variable_name(s) && s.len() <= limits::VAR_NAME_BYTES,
    "must match [A-Za-z_][A-Za-z0-9_]*, at most 253 characters"
);
string_newtype!(
    /// Who acted: an email or user name, free text but never empty.
    Actor,
    "actor",
    |s| !s.trim().is_empty() && s.len() <= 256 && !s.chars().any(char::is_control),
    "must be non-empty, at most 256 characters, without control characters"
);
string_newtype!(
    /// A build's id: the first 12 hex digits of the SHA-256 of its image reference, so
    /// registering the same image twice names the same build, and the same digest pushed to
    /// another repository is another build.
    BuildId,
    "build id",
    |s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    "must be 12 lowercase hex digits (see `hoist builds register`)"
);
string_newtype!(
    /// A token's id: 12 lowercase hex digits, chosen at random when it is created. How people
    /// name a token (`hoist access token revoke ID`); it says nothing of the token itself.
    TokenId,
    "token id",
    |s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    "must be 12 lowercase hex digits (see `hoist access token list`)"
);
string_newtype!(
    /// A chat user who may act as an identity: `slack:TEAM/USER` or `matrix:@user:server`.
    ChatId,
    "chat id",
    is_chat_id,
    "must be slack:TEAM/USER or matrix:@user:server (no spaces, at most 255 characters)"
);

/// What a `via` may be (the front end an event came through, recorded in its envelope): the name
/// of a front end or a chat user, on one line, within [`limits::VIA_BYTES`].
pub fn check_via(via: &str) -> Result<(), ValidationError> {
    let invalid = |rule| Err(ValidationError::new("via", via, rule));
    if via.trim().is_empty() {
        return invalid("must not be empty (an event made directly on a store has none)");
    }
    if via.chars().any(char::is_control) || via.len() > limits::VIA_BYTES {
        return invalid("must be one line of at most 256 bytes");
    }
    Ok(())
}

fn is_chat_id(s: &str) -> bool {
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"/:@".contains(&b))
    };
    s.len() <= 255
        && match s.split_once(':') {
            Some(("slack", rest)) => rest
                .split_once('/')
                .is_some_and(|(team, user)| plain(team) && plain(user)),
            Some(("matrix", rest)) => rest
                .strip_prefix('@')
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(user, server)| {
                    plain(user)
                        && !server.is_empty()
                        && server
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@')
                }),
            _ => false,
        }
}

string_newtype!(
    /// A container image pinned by digest: `repo[:tag]@sha256:<64 hex>`. A tag alone can move,
    /// and a rollback to a moved tag would not be exact.
    ImageRef,
    "image",
    is_pinned_image,
    "must be pinned by digest: repo@sha256:<64 lowercase hex>"
);

fn is_pinned_image(s: &str) -> bool {
    let Some((repo, digest)) = s.split_once('@') else {
        return false;
    };
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return false;
    };
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !repo.is_empty()
        && repo.len() <= 255
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
}

impl ImageRef {
    /// `repo@sha256:` and the first 12 hex digits: enough to tell images apart in a line of text.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len() - 52]
    }

    /// The build id this image is registered under.
    pub fn build_id(&self) -> BuildId {
        self.build_id_with("")
    }

    /// The id of a build of this image that also names `formation` (its process types and
    /// release command, written canonically): the image's own id when `formation` is empty, so
    /// builds registered before process types keep their ids.
    pub fn build_id_with(&self, formation: &str) -> BuildId {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.0.as_bytes());
        if !formation.is_empty() {
            hasher.update(b"\n");
            hasher.update(formation.as_bytes());
        }
        let hash = hasher.finalize();
        BuildId(
            hash[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        )
    }
}

/// A release number within one env: v1, v2, … Written `12` or `v12` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ReleaseVersion(u64);

impl TryFrom<u64> for ReleaseVersion {
    type Error = ValidationError;
    fn try_from(n: u64) -> Result<Self, ValidationError> {
        ReleaseVersion::new(n)
            .ok_or_else(|| ValidationError::new("version", n.to_string(), "must be at least 1"))
    }
}

impl From<ReleaseVersion> for u64 {
    fn from(version: ReleaseVersion) -> u64 {
        version.0
    }
}

impl ReleaseVersion {
    pub const FIRST: ReleaseVersion = ReleaseVersion(1);

    pub fn new(n: u64) -> Option<Self> {
        (n > 0).then_some(ReleaseVersion(n))
    }
    pub fn get(self) -> u64 {
        self.0
    }
    pub fn next(self) -> Self {
        ReleaseVersion(self.0 + 1)
    }
    pub fn previous(self) -> Option<Self> {
        Self::new(self.0 - 1)
    }
}

impl FromStr for ReleaseVersion {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, ValidationError> {
        let digits = s.strip_prefix('v').unwrap_or(s);
        // Digits only: `u64::from_str` would also take a sign (`+2`), which no version is written with.
        Some(digits)
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
            .and_then(ReleaseVersion::new)
            .ok_or_else(|| {
                ValidationError::new("version", s, "must be a release number like 12 or v12")
            })
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "api", "api-2", "0", &"a".repeat(63)] {
            assert!(ok.parse::<AppName>().is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Api", "a_b", "a.b", &"a".repeat(64)] {
            let err = bad.parse::<EnvName>().unwrap_err();
            assert_eq!(err.field, "env name");
        }
    }

    #[test]
    fn no_app_name_people_type_is_the_access_chain() {
        assert!(AppName::ACCESS.parse::<AppName>().is_err());
        let access = AppName::from_log(AppName::ACCESS).unwrap();
        assert!(access.is_access());
        assert_eq!(access, AppName::access());
        assert_eq!(
            serde_json::from_str::<AppName>("\"_access\"").unwrap(),
            access,
            "what the log holds reads back"
        );
        assert!(!"api".parse::<AppName>().unwrap().is_access());
        for bad in ["_other", "_", "Api", ""] {
            assert!(AppName::from_log(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chat_ids() {
        for ok in [
            "slack:T024BE7LD/U012AB3CD",
            "matrix:@ana:example.org",
            "matrix:@ana:example.org:8448",
        ] {
            assert!(ok.parse::<ChatId>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "slack:T1",
            "slack:/U1",
            "slack:T1/",
            "slack:T 1/U1",
            "matrix:ana:example.org",
            "matrix:@ana",
            "matrix:@:example.org",
            "irc:ana",
            "slack:T1/U1/x",
        ] {
            assert!(bad.parse::<ChatId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys() {
        for ok in ["A", "_", "DATABASE_URL", "a1"] {
            assert!(ok.parse::<ConfigKey>().is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(bad.parse::<ConfigKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn images_must_be_pinned_by_digest() {
        let digest = "a".repeat(64);
        let pinned: ImageRef = format!("registry.example:5000/team/api@sha256:{digest}")
            .parse()
            .unwrap();
        let id = pinned.build_id();
        assert_eq!(id.as_str().len(), 12);
        assert_eq!(
            id,
            pinned.clone().build_id(),
            "the same image is the same build"
        );
        let other_repo: ImageRef = format!("registry.example:5000/team/web@sha256:{digest}")
            .parse()
            .unwrap();
        assert_ne!(
            other_repo.build_id(),
            id,
            "the same digest in another repository is another build"
        );
        assert_eq!(
            pinned.short(),
            "registry.example:5000/team/api@sha256:aaaaaaaaaaaa"
        );
        assert!(format!("api:1.2@sha256:{digest}")
            .parse::<ImageRef>()
            .is_ok());
        for bad in [
            "api:latest".to_owned(),
            "api".to_owned(),
            format!("@sha256:{digest}"),
            format!("api@sha256:{}", "A".repeat(64)),
            format!("api@sha256:{}", "a".repeat(63)),
            format!("api@md5:{digest}"),
        ] {
            let err = bad.parse::<ImageRef>().unwrap_err();
            assert_eq!(err.field, "image", "{bad}");
        }
    }

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!("12".parse::<ReleaseVersion>().unwrap().get(), 12);
        assert_eq!("v3".parse::<ReleaseVersion>().unwrap().get(), 3);
        assert!(
            serde_json::from_str::<ReleaseVersion>("0").is_err(),
            "v0 cannot come in through JSON either"
        );
        assert_eq!(
            serde_json::from_str::<ReleaseVersion>("7").unwrap().get(),
            7
        );
        for bad in [
            "0", "v0", "-1", "x", "", "v", "+2", "v+2", "+v2", " 2", "2 ", "vv2", "2.0",
        ] {
            assert!(bad.parse::<ReleaseVersion>().is_err(), "{bad}");
        }
        assert_eq!(ReleaseVersion::FIRST.to_string(), "v1");
    }
}

// issue 14: formation (process types, domains).
string_newtype!(
    /// A process type of a build (`web`, `worker`): a DNS label, as it names Kubernetes objects
    /// (`APP-TYPE`). `release` is not one: in a Procfile it names the release-phase command.
    ProcessType,
    "process type",
    |s| is_dns_label(s) && s != "release",
    "must be a DNS label (lowercase letters, digits and '-', at most 63 characters) other than `release`"
);

impl ProcessType {
    /// The process type that gets `PORT`, the Service and the domains.
    pub const WEB: &'static str = "web";

    pub fn web() -> Self {
        ProcessType(Self::WEB.into())
    }

    pub fn is_web(&self) -> bool {
        &*self.0 == Self::WEB
    }
}

string_newtype!(
    /// A host name routed to an env's `web` process: RFC 1123 labels separated by dots, at most
    /// 253 characters, lowercase; a wildcard only as a whole first label (`*.example.com`).
    Hostname,
    "host",
    is_hostname,
    "must be an RFC 1123 host name (lowercase DNS labels separated by dots, at most 253 characters; a wildcard only as a leading `*.`)"
);

fn is_hostname(s: &str) -> bool {
    let rest = s.strip_prefix("*.").unwrap_or(s);
    s.len() <= 253
        && rest.contains('.')
        && rest.split('.').all(is_dns_label)
        // A top-level label of digits only would read as an IP address.
        && !rest.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod formation_tests {
    use super::*;

    #[test]
    fn process_types_are_dns_labels_and_release_is_reserved() {
        for good in ["web", "worker", "clock-2"] {
            assert!(good.parse::<ProcessType>().is_ok(), "{good}");
        }
        for bad in ["", "Web", "-web", "web_1", "release", &"a".repeat(64)] {
            assert!(bad.parse::<ProcessType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_follow_rfc_1123_with_a_leading_wildcard_only() {
        for good in ["api.example.com", "*.example.com", "a-1.b.example.io"] {
            assert!(good.parse::<Hostname>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "localhost",
            "API.example.com",
            "a..b",
            "-a.example.com",
            "a.*.example.com",
            "*example.com",
            "*.*.example.com",
            "10.0.0.1",
            "a_b.example.com",
            "example.com.",
        ] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
    }
}
