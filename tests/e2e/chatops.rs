//! ChatOps over Slack's Socket Mode and a bot's messages (issue 12), end to end: a real `hoist
//! serve` connects to a local stand-in of Slack's Socket Mode (`tests/support/slack_socket.rs`),
//! acks every envelope by its id, runs each command once however often it is redelivered, and
//! reconnects on `disconnect`; a Slack bot hook posts a failed rollout through
//! `chat.postMessage` (validated by PyPI's `slack_sdk`) with a **Roll back to vN** button whose
//! click, sent back over the socket, rolls back as the clicking user.

use crate::harness::{image, wait_for, Hoist};
use crate::serve::sigterm;
use crate::slack_socket::SlackSocket;
use crate::subscribers::Receiver;
use serde_json::{json, Value};
use std::process::{Child, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// `hoist serve --config DIR/CONFIG` (resync 60 s), its log in DIR/LOG.
pub fn serve_with_config(h: &Hoist, config: &str, log: &str) -> Child {
    let dir = h.dir.path();
    h.command(&[
        "serve",
        "--resync",
        "60s",
        "--config",
        dir.join(config).to_str().unwrap(),
    ])
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join(log)).unwrap())
    .spawn()
    .expect("hoist serve starts")
}

/// `socket.toml`: Socket Mode with `app_token` against the stand-in `slack`.
fn socket_settings(h: &Hoist, app_token: &str, slack: &SlackSocket) {
    let dir = h.dir.path();
    std::fs::write(dir.join("slack-app-token"), format!("{app_token}\n")).unwrap();
    std::fs::write(
        dir.join("socket.toml"),
        format!(
            "[slack]\napp_token_file = \"slack-app-token\"\napi_url = \"{}\"\n",
            slack.api_url()
        ),
    )
    .unwrap();
}

/// `identity` becomes an operator of api, and `chat_id` acts as it.
pub fn link_an_operator(h: &Hoist, chat_id: &str, identity: &str) {
    h.ok(&[
        "access", "grant", identity, "--role", "operator", "--app", "api",
    ]);
    h.ok(&["access", "link", chat_id, identity]);
}

pub fn socket_mode_runs_each_command_once_under_its_roles(h: &Hoist) {
    let dir = h.dir.path();
    let app_token = "xapp-1-A0STANDIN-1-s3cr3t";
    let slack = SlackSocket::start(app_token);
    let web = Receiver::start(dir, "slack-web", "whsec_unused", "", None);
    socket_settings(h, app_token, &slack);
    std::fs::write(dir.join("slack-bot-token"), "xoxb-2-bot\n").unwrap();
    h.ok(&["apps", "create", "api"]);
    // v2 fails its rollout: the bot's alert offers to roll back to v1.
    h.ok(&[
        "envs",
        "target",
        "api",
        "--env",
        "production",
        "--exec",
        "if [ \"$HOIST_VERSION\" = 2 ]; then echo 'crash <loop>' >&2; exit 3; fi",
    ]);
    h.ok(&[
        "hooks",
        "add",
        "oncall",
        "--format",
        "slack",
        "--url",
        &web.url("/slack/api"),
        "--room",
        "C0123",
        "--token-file",
        dir.join("slack-bot-token").to_str().unwrap(),
        "--events",
        "rollout",
    ]);
    link_an_operator(h, "slack:T1/U2", "opa@example.com");
    let mut serve = serve_with_config(h, "socket.toml", "socket.log");
    wait_for("the socket", WAIT, || {
        (slack.connections() == 1).then_some(())
    });
    assert_eq!(
        slack.opens(),
        vec![true],
        "the app token as a Bearer header"
    );

    // The bot's message: chat.postMessage with the token, a button on the failed rollout.
    h.deploy("api", "production", &image("api", '1'));
    h.deploy("api", "production", &image("api", '2'));
    let posted = wait_for("the failed rollout's message", WAIT, || {
        web.requests()
            .into_iter()
            .find(|r| r["body"].as_str().unwrap_or("").contains("rollout failed"))
    });
    assert_eq!(posted["path"], "/slack/api/chat.postMessage");
    assert_eq!(posted["headers"]["authorization"], "Bearer xoxb-2-bot");
    assert!(posted.get("slack_error").is_none(), "{posted}");
    assert_eq!(
        posted["slack"]["blocks"],
        json!(["header", "section", "context", "actions"])
    );
    let message: Value = serde_json::from_str(posted["body"].as_str().unwrap()).unwrap();
    assert_eq!(message["channel"], "C0123");
    let button = &message["blocks"][3]["elements"][0];
    assert_eq!(button["text"]["text"], "Roll back to v1");
    assert_eq!(button["style"], "danger");
    assert!(
        !message.to_string().contains("<loop>"),
        "escaped: {message}"
    );

    let responses = Receiver::start(dir, "responses", "whsec_unused", "", None);
    let command = |envelope: &str, trigger: &str, user: &str, text: &str| {
        json!({
            "type": "slash_commands", "envelope_id": envelope, "accepts_response_payload": true,
            "retry_attempt": 0, "retry_reason": "",
            "payload": {"team_id": "T1", "user_id": user, "user_name": "not-trusted",
                "command": "/hoist", "text": text, "trigger_id": trigger,
                "response_url": responses.url("/response")}
        })
    };
    let answer = |n: usize| -> Value {
        let r = wait_for(&format!("response {n}"), WAIT, || {
            responses.requests().get(n).cloned()
        });
        serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
    };
    let acked = |id: &str| {
        wait_for(&format!("the ack of {id}"), WAIT, || {
            slack
                .acks()
                .into_iter()
                .map(|(_, ack)| ack)
                .find(|ack| ack["envelope_id"] == id)
        })
    };

    // A rollback from chat: acked by its envelope id with "working…", answered on response_url.
    let releases = || {
        h.json(&["releases", "api", "--env", "production"])
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(releases(), 2);
    slack.send(&command("e1", "t1", "U2", "rollback api production"));
    let ack = acked("e1");
    assert_eq!(
        ack["payload"]["text"],
        "Working on `/hoist rollback api production`…"
    );
    let first = answer(0);
    assert_eq!(first["response_type"], "in_channel", "{first}");
    let text = first["text"].as_str().unwrap();
    assert!(text.contains("api/production v3"), "{text}");
    assert!(text.contains("by opa@example.com"), "{text}");
    assert!(text.contains("changes: image:"), "the diff summary: {text}");

    // Slack refreshes the connection: hoist opens another at once.
    slack.send(&json!({"type": "disconnect", "reason": "refresh_requested"}));
    wait_for("a second socket", WAIT, || {
        (slack.connections() == 2).then_some(())
    });
    assert_eq!(slack.opens(), vec![true, true]);
    // Redelivered across the reconnect (the same envelope; the same trigger in a new one):
    // acked, not run again.
    slack.send(&command("e1", "t1", "U2", "rollback api production"));
    slack.send(&command("e2", "t1", "U2", "rollback api production"));
    acked("e2");
    // The operator may not promote; a stranger is not linked; then a sentinel status.
    slack.send(&command("e3", "t3", "U2", "promote api"));
    let refused = answer(1);
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    assert!(
        refused["text"].as_str().unwrap().contains("not allowed"),
        "{refused}"
    );
    slack.send(&command("e4", "t4", "U9", "rollback api production"));
    assert!(
        answer(2)["text"].as_str().unwrap().contains("not linked"),
        "an unlinked user"
    );
    slack.send(&command("e7", "t7", "U2", "rollback nope production"));
    let unknown = answer(3);
    assert_eq!(unknown["response_type"], "ephemeral", "{unknown}");
    assert!(
        unknown["text"].as_str().unwrap().contains("nope"),
        "an unknown app: {unknown}"
    );
    slack.send(&command("e5", "t5", "U2", "status api"));
    assert!(answer(4)["text"].as_str().unwrap().contains("production"));
    assert_eq!(
        releases(),
        3,
        "one rollback, however often it came; refusals release nothing"
    );

    // The button's click, over the socket, as the clicking user.
    let click = json!({
        "type": "interactive", "envelope_id": "e6", "accepts_response_payload": false,
        "payload": {
            "type": "block_actions", "trigger_id": "t6",
            "user": {"id": "U2", "team_id": "T1", "username": "not-trusted"},
            "team": {"id": "T1"},
            "container": {"type": "message", "channel_id": "C0123", "message_ts": "1.2"},
            "actions": [{"action_id": button["action_id"], "block_id": message["blocks"][3]["block_id"],
                "type": "button", "value": button["value"], "action_ts": "1.3"}],
            "response_url": responses.url("/response"),
        }
    });
    slack.send(&click);
    let replaced = answer(5);
    assert_eq!(replaced["replace_original"], true, "{replaced}");
    let text = replaced["text"].as_str().unwrap();
    assert!(
        text.contains("by opa@example.com") && text.contains("clicked by <@U2>"),
        "{text}"
    );
    let releases = h.json(&["releases", "api", "--env", "production", "--limit", "1"]);
    assert_eq!(releases[0]["rollback_to"], 1, "{releases}");
    let events = h.ok(&["events"]);
    assert!(events.contains("\"via\":\"slack:T1/U2\""), "{events}");
    // Every envelope was acked, each soon after it was sent (Slack allows 3 s).
    let ids: Vec<String> = slack
        .acks()
        .into_iter()
        .map(|(_, a)| a["envelope_id"].as_str().unwrap_or("").to_string())
        .collect();
    for id in ["e1", "e2", "e3", "e4", "e5", "e6", "e7"] {
        assert!(ids.iter().any(|a| a == id), "{id} acked: {ids:?}");
    }
    sigterm(&mut serve);
    let log = std::fs::read_to_string(dir.join("socket.log")).unwrap();
    assert!(!log.contains(app_token), "the app token is never logged");
    assert!(!log.contains("xoxb-2-bot"), "the bot token is never logged");
}

/// A wrong app token: `serve` keeps trying, with backoff, and says why in one line; nothing runs.
pub fn a_refused_app_token_is_retried_and_said(h: &Hoist) {
    let dir = h.dir.path();
    let slack = SlackSocket::start("xapp-the-right-one");
    socket_settings(h, "xapp-a-wrong-one", &slack);
    let mut serve = serve_with_config(h, "socket.toml", "refused.log");
    wait_for("two refused opens", WAIT, || {
        (slack.opens().len() >= 2).then_some(())
    });
    assert!(slack.opens().iter().all(|allowed| !allowed));
    assert_eq!(slack.connections(), 0);
    sigterm(&mut serve);
    let log = std::fs::read_to_string(dir.join("refused.log")).unwrap();
    assert!(log.contains("apps.connections.open: invalid_auth"), "{log}");
    assert!(!log.contains("xapp-a-wrong-one"), "{log}");
}
