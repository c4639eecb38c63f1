//! Chat commands (issue 12): one grammar and one executor for every chat. The words a person
//! types after `/hoist` (Slack) or `!hoist` (Matrix) become the same [`Request`] the CLI builds,
//! run as the identity the chat user is linked to (`hoist access link`), under its roles; the
//! answer is the CLI's human text, short enough for a message. An unlinked user, a missing
//! permission or a rejected command gets a reply naming the rule, and nothing is appended.

use crate::api::Request;
use crate::error::ErrorKind;
use crate::{Caller, Hoist};
use hoist_engine::{AppName, ChatId, EnvName, ReleaseVersion};

/// One command of the grammar: its words and what it does (the help text is made from these).
struct Form {
    usage: &'static str,
    does: &'static str,
}

const GRAMMAR: [Form; 7] = [
    Form {
        usage: "status APP",
        does: "the current release of every env",
    },
    Form {
        usage: "releases APP ENV",
        does: "the env's last 5 releases, newest first",
    },
    Form {
        usage: "promote APP [FROM] [TO]",
        does: "FROM's build into TO (default: the first env into the next)",
    },
    Form {
        usage: "rollback APP ENV [VERSION|last-healthy]",
        does: "back to VERSION (default: the release before the current one); pins the env",
    },
    Form {
        usage: "lock APP ENV REASON…",
        does: "freeze the env (rollback stays allowed)",
    },
    Form {
        usage: "unlock APP ENV",
        does: "lift the lock",
    },
    Form {
        usage: "help",
        does: "this list",
    },
];

/// The help text, from the grammar: `prefix` is how the chat starts a command (`/hoist`).
pub fn help(prefix: &str) -> String {
    let mut out = String::from("hoist commands:\n");
    for form in GRAMMAR {
        out.push_str(&format!("  {prefix} {} — {}\n", form.usage, form.does));
    }
    out
}

/// What the words ask.
#[derive(Debug)]
pub enum Parsed {
    Help,
    Run(Request),
    /// `promote APP [FROM] [TO]`: FROM defaults to the pipeline's first env, known once the app
    /// is read.
    Promote {
        app: AppName,
        from: Option<EnvName>,
        to: Option<EnvName>,
    },
}

/// Parses a command's words (after the prefix). Errors name the rule, in one line.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let usage = |verb: &str| {
        GRAMMAR
            .iter()
            .find(|f| f.usage.split(' ').next() == Some(verb))
            .map_or(String::new(), |f| format!("usage: {}", f.usage))
    };
    let app = |word: Option<&&str>, verb: &str| -> Result<AppName, String> {
        word.ok_or_else(|| usage(verb))?
            .parse()
            .map_err(|e: hoist_engine::ValidationError| e.to_string())
    };
    let env = |word: Option<&&str>, verb: &str| -> Result<EnvName, String> {
        word.ok_or_else(|| usage(verb))?
            .parse()
            .map_err(|e: hoist_engine::ValidationError| e.to_string())
    };
    let Some(verb) = words.first() else {
        return Ok(Parsed::Help);
    };
    let at_most = |n: usize| {
        if words.len() > n {
            Err(format!("too many words; {}", usage(verb)))
        } else {
            Ok(())
        }
    };
    let request = match *verb {
        "help" => return Ok(Parsed::Help),
        "status" => {
            at_most(2)?;
            Request::Status {
                app: app(words.get(1), verb)?,
                at: None,
            }
        }
        "releases" => {
            at_most(3)?;
            Request::Releases {
                app: app(words.get(1), verb)?,
                env: env(words.get(2), verb)?,
                at: None,
                limit: Some(5),
            }
        }
        "promote" => {
            at_most(4)?;
            let app = app(words.get(1), verb)?;
            let from = match words.get(2) {
                Some(word) => Some(env(Some(word), verb)?),
                None => None,
            };
            let to = match words.get(3) {
                Some(word) => Some(env(Some(word), verb)?),
                None => None,
            };
            return Ok(Parsed::Promote { app, from, to });
        }
        "rollback" if words.get(3) == Some(&"last-healthy") => {
            at_most(4)?;
            Request::RollbackLastHealthy {
                app: app(words.get(1), verb)?,
                env: env(words.get(2), verb)?,
            }
        }
        "rollback" => {
            at_most(4)?;
            Request::Rollback {
                app: app(words.get(1), verb)?,
                env: env(words.get(2), verb)?,
                to: words
                    .get(3)
                    .map(|v| v.parse::<ReleaseVersion>())
                    .transpose()
                    .map_err(|e| e.to_string())?,
            }
        }
        "lock" => {
            let reason = words.get(3..).map(|w| w.join(" ")).unwrap_or_default();
            if reason.is_empty() {
                return Err(usage(verb));
            }
            Request::Lock {
                app: app(words.get(1), verb)?,
                env: env(words.get(2), verb)?,
                reason,
            }
        }
        "unlock" => {
            at_most(3)?;
            Request::Unlock {
                app: app(words.get(1), verb)?,
                env: env(words.get(2), verb)?,
            }
        }
        other => {
            return Err(format!(
                "unknown command {:?}: say help for the list",
                crate::text::escape(other)
            ))
        }
    };
    Ok(Parsed::Run(request))
}

/// A chat's reply: the text, and whether the command went through.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub ok: bool,
}

impl Hoist {
    /// Runs the words `text` typed by `chat_id` (prefix `prefix` for the help text), as its
    /// linked identity; `command_id` makes a command seen again (a redelivered message) the same
    /// command, stored once.
    pub async fn chat(
        &self,
        chat_id: &ChatId,
        text: &str,
        prefix: &str,
        command_id: Option<uuid::Uuid>,
    ) -> Reply {
        let refused = |text: String| Reply { text, ok: false };
        let parsed = match parse(text) {
            Ok(parsed) => parsed,
            Err(rule) => return refused(rule),
        };
        if let Parsed::Help = parsed {
            return Reply {
                text: help(prefix),
                ok: true,
            };
        }
        let caller: Caller = match self.authenticate_chat(chat_id).await {
            Ok(caller) => Caller {
                command_id,
                ..caller
            },
            Err(e) => return refused(e.message().to_string()),
        };
        let request = match parsed {
            Parsed::Help => unreachable!("answered above"),
            Parsed::Run(request) => request,
            Parsed::Promote { app, from, to } => {
                let from = match from {
                    Some(from) => from,
                    None => match self.app(&caller.principal, &app, None).await {
                        Ok(state) => match state.pipeline.first() {
                            Some(first) => first.clone(),
                            None => return refused(format!("app {app} has no envs")),
                        },
                        Err(e) => return refused(e.message().to_string()),
                    },
                };
                Request::Promote { app, from, to }
            }
        };
        let actor = caller.actor.clone();
        let rolled_back = match &request {
            Request::Rollback { app, env, .. } | Request::RollbackLastHealthy { app, env } => {
                Some((app.clone(), env.clone()))
            }
            _ => None,
        };
        match self.answer(&caller, request, None).await {
            Ok(answer) => match answer.failure {
                Some(failure) => refused(failure.message().to_string()),
                None => {
                    let mut text = if answer.human.starts_with("Released")
                        || answer.human.starts_with("Locked")
                        || answer.human.starts_with("Unlocked")
                    {
                        format!("{} (by {actor})", answer.human.trim_end())
                    } else {
                        answer.human.trim_end().to_string()
                    };
                    if let Some((app, env)) = rolled_back {
                        if let Some(changes) = self
                            .rollback_changes(&caller, &app, &env, &answer.json)
                            .await
                        {
                            text.push_str(&format!("\nchanges: {changes}"));
                        }
                    }
                    Reply { text, ok: true }
                }
            },
            Err(e) => refused(match e.kind() {
                ErrorKind::Denied => format!("not allowed: {}", e.message()),
                _ => e.message().to_string(),
            }),
        }
    }
}

impl Hoist {
    /// What a rollback changed: the diff from the release it replaced (the one numbered before
    /// it) to the new one, summarized; `None` when it cannot be read (the reply goes without).
    async fn rollback_changes(
        &self,
        caller: &Caller,
        app: &AppName,
        env: &EnvName,
        answer_json: &str,
    ) -> Option<String> {
        let view: serde_json::Value = serde_json::from_str(answer_json).ok()?;
        let new = view["version"].as_u64()?;
        let to: ReleaseVersion = format!("v{new}").parse().ok()?;
        let from: ReleaseVersion = format!("v{}", new.checked_sub(1)?).parse().ok()?;
        let diff = self
            .diff(&caller.principal, app, env, from, to)
            .await
            .ok()?;
        Some(diff.summary(3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_parses_each_form_and_names_the_rule_otherwise() {
        assert!(matches!(parse("help"), Ok(Parsed::Help)));
        assert!(matches!(parse(""), Ok(Parsed::Help)));
        assert!(matches!(
            parse("status api"),
            Ok(Parsed::Run(Request::Status { .. }))
        ));
        assert!(matches!(
            parse("rollback api production v3"),
            Ok(Parsed::Run(Request::Rollback { to: Some(_), .. }))
        ));
        assert!(matches!(
            parse("promote api"),
            Ok(Parsed::Promote {
                from: None,
                to: None,
                ..
            })
        ));
        match parse("lock api production code freeze until monday") {
            Ok(Parsed::Run(Request::Lock { reason, .. })) => {
                assert_eq!(reason, "code freeze until monday")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("lock api production").unwrap_err(),
            "usage: lock APP ENV REASON…"
        );
        assert!(parse("deploy api").unwrap_err().contains("unknown command"));
        assert!(parse("status Api").unwrap_err().contains("app name"));
        assert!(parse("rollback api production vX")
            .unwrap_err()
            .contains("version"));
        assert!(parse("unlock api production now")
            .unwrap_err()
            .contains("too many words"));
        let help = help("!hoist");
        assert_eq!(help.lines().count(), GRAMMAR.len() + 1);
        assert!(help.contains("!hoist rollback APP ENV [VERSION|last-healthy]"));
    }
}

// ---- Slack over HTTP ---------------------------------------------------------------------------

/// How old a Slack request may be (Slack's own rule), and how long a signature is remembered so
/// the same request is not taken twice.
pub const SLACK_TOLERANCE_SECS: i64 = 300;

/// A Slack signing secret: never in a log line or a `Debug` print.
#[derive(Clone)]
pub struct SigningSecret(pub String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Admits Slack's requests: signed with the app's signing secret, at most 300 s old (or ahead),
/// and not seen before (a replay within the window is refused).
pub struct SlackGate {
    signing_secret: String,
    seen: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl std::fmt::Debug for SlackGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackGate").finish_non_exhaustive()
    }
}

impl SlackGate {
    pub fn new(signing_secret: SigningSecret) -> Self {
        SlackGate {
            signing_secret: signing_secret.0,
            seen: Default::default(),
        }
    }

    /// `Ok` when the request is Slack's, fresh and new; else the reason, in one line (never the
    /// secret or the expected signature).
    pub fn admit(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), String> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(
                "missing X-Slack-Request-Timestamp or X-Slack-Signature: not a request from Slack"
                    .into(),
            );
        };
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| "X-Slack-Request-Timestamp is not a Unix time".to_string())?;
        if (now - at).abs() > SLACK_TOLERANCE_SECS {
            return Err(format!(
                "stale request: its timestamp is {}s from now (at most {SLACK_TOLERANCE_SECS}s)",
                now - at
            ));
        }
        let expected = hoist_adapters::notify::slack::request_signature(
            &self.signing_secret,
            timestamp.trim(),
            body,
        );
        use subtle::ConstantTimeEq;
        if !bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
            return Err("bad X-Slack-Signature: not signed with this app's signing secret".into());
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| (now - *at).abs() <= SLACK_TOLERANCE_SECS);
        if seen.insert(signature.trim().to_string(), at).is_some() {
            return Err("replayed request: this signature was already taken".into());
        }
        Ok(())
    }
}

/// A slash command as Slack posts it (the fields hoist reads; `user_name` is deprecated and
/// never trusted).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SlackCommand {
    pub team_id: String,
    pub user_id: String,
    #[serde(default)]
    pub text: String,
    pub response_url: String,
    /// One per invocation: the same command redelivered keeps it.
    #[serde(default)]
    pub trigger_id: Option<String>,
}

/// The acknowledgement's text (ephemeral, at once): the command's words, escaped.
pub fn working(text: &str) -> String {
    format!("Working on `/hoist {}`…", crate::text::escape(text.trim()))
}

/// A chat command's id, made from what identifies its message (a Matrix event id, a Slack
/// trigger id): the same after any restart, so a redelivered message is the same command,
/// stored once.
pub(crate) fn command_id(origin: &str) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(origin.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Hoist {
    /// Runs a slash command as `slack:TEAM/USER`, then posts the reply to its `response_url`
    /// (in the channel when it went through, to the user alone when refused).
    pub async fn slack_command(&self, command: SlackCommand) {
        let reply = match format!("slack:{}/{}", command.team_id, command.user_id).parse::<ChatId>()
        {
            Ok(chat_id) => {
                let id = command
                    .trigger_id
                    .as_deref()
                    .map(|t| command_id(&format!("slack command {t}")));
                self.chat(&chat_id, &command.text, "/hoist", id).await
            }
            Err(e) => Reply {
                text: e.to_string(),
                ok: false,
            },
        };
        let body = serde_json::json!({
            "response_type": if reply.ok { "in_channel" } else { "ephemeral" },
            "text": reply.text,
        });
        self.slack_follow_up(&command.response_url, body).await;
    }

    /// A button's click (`block_actions`): `rollback APP ENV VERSION` as the clicking user; the
    /// message is replaced by what came of it and who clicked.
    pub async fn slack_action(&self, payload: &serde_json::Value) {
        let Some(response_url) = payload["response_url"].as_str() else {
            return;
        };
        let team = payload["user"]["team_id"]
            .as_str()
            .or(payload["team"]["id"].as_str())
            .unwrap_or_default();
        let user = payload["user"]["id"].as_str().unwrap_or_default();
        let action = &payload["actions"][0];
        let reply = match (
            action["action_id"].as_str(),
            action["value"].as_str(),
            format!("slack:{team}/{user}").parse::<ChatId>(),
        ) {
            (Some("hoist_rollback"), Some(words), Ok(chat_id))
                if words.starts_with("rollback ") =>
            {
                self.chat(&chat_id, words, "/hoist", None).await
            }
            (_, _, Err(e)) => Reply {
                text: e.to_string(),
                ok: false,
            },
            _ => Reply {
                text: "not a hoist action".into(),
                ok: false,
            },
        };
        let body = if reply.ok {
            serde_json::json!({"replace_original": true, "text": format!("{} — clicked by <@{user}>", reply.text)})
        } else {
            serde_json::json!({"replace_original": false, "response_type": "ephemeral", "text": reply.text})
        };
        self.slack_follow_up(response_url, body).await;
    }

    async fn slack_follow_up(&self, response_url: &str, body: serde_json::Value) {
        if let Err(e) = hoist_adapters::notify::check_url(response_url) {
            tracing::warn!(error = %e, "slack: response_url");
            return;
        }
        let sender = self
            .chat_sender
            .get_or_init(|| hoist_adapters::notify::Sender::new(crate::hooks::ATTEMPT_TIMEOUT));
        let outgoing = hoist_adapters::notify::Outgoing {
            method: "POST",
            url: response_url.to_string(),
            headers: vec![("content-type", "application/json".to_string())],
            body: serde_json::to_vec(&body).expect("JSON"),
        };
        match sender.send(&outgoing).await {
            hoist_engine::hooks::Answered::Status { status, .. }
                if (200..300).contains(&status) => {}
            other => tracing::warn!(answer = ?other, "slack: posting to response_url"),
        }
    }
}
