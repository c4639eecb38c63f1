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
        usage: "rollback APP ENV [VERSION]",
        does: "back to VERSION (default: the release before the current one)",
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
        match self.answer(&caller, request, Some(72)).await {
            Ok(answer) => match answer.failure {
                Some(failure) => refused(failure.message().to_string()),
                None => Reply {
                    text: if answer.human.starts_with("Released")
                        || answer.human.starts_with("Locked")
                        || answer.human.starts_with("Unlocked")
                    {
                        format!("{} (by {actor})", answer.human.trim_end())
                    } else {
                        answer.human.trim_end().to_string()
                    },
                    ok: true,
                },
            },
            Err(e) => refused(match e.kind() {
                ErrorKind::Denied => format!("not allowed: {}", e.message()),
                _ => e.message().to_string(),
            }),
        }
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
        assert!(help.contains("!hoist rollback APP ENV [VERSION]"));
    }
}
