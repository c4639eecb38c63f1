//! `hoist --server URL …`: every command through the server's HTTP API (hoist_server's client),
//! printing exactly what the server's `hoist_control` answered, with the same exit codes; and
//! `hoist login`, which checks a token and saves it with its server (file mode 0600).

use crate::cli::GlobalArgs;
use crate::commands::Ctx;
use crate::output::{out, print_json, print_json_line, stdout_closed, width, write_stdout};
use hoist_control::api::Request;
use hoist_control::Error;
use hoist_server::client::{Accept, Client};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What `hoist login` saved.
#[derive(Debug, Serialize, Deserialize)]
struct Login {
    server: String,
    token: String,
}

/// Where `hoist login` keeps the server and token: `HOIST_LOGIN_FILE`, else the platform's
/// config dir (`~/.config/hoist/login.json`).
fn login_path() -> Option<PathBuf> {
    std::env::var_os("HOIST_LOGIN_FILE")
        .map(PathBuf::from)
        .or_else(|| dirs::config_dir().map(|d| d.join("hoist").join("login.json")))
}

fn saved_login() -> Option<Login> {
    let text = std::fs::read_to_string(login_path()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// The server the global options (or a saved login) name, if any: `--server`, else the saved one
/// unless a store is named (`--store`, `--nats`).
pub fn client(global: &GlobalArgs) -> Result<Option<Client>, Error> {
    let saved = saved_login();
    let (server, token) = match (&global.server, saved) {
        (Some(server), saved) => {
            // The saved token goes only to the server it was saved for.
            let saved_token = saved.filter(|l| l.server == *server).map(|l| l.token);
            (server.clone(), global.token.clone().or(saved_token))
        }
        (None, Some(login)) if global.store.is_none() && global.nats.is_none() => {
            (login.server, global.token.clone().or(Some(login.token)))
        }
        (None, _) => return Ok(None),
    };
    Client::new(&server, token).map(Some)
}

/// One command through the server: its JSON or its human text, as the local CLI prints it.
pub async fn answer(client: &Client, request: &Request, json: bool) -> Result<(), Error> {
    let accept = if json {
        Accept::Json
    } else {
        Accept::Human { width: width() }
    };
    let reply = client.answer(request, accept).await?;
    if json {
        write_stdout(reply.body.as_bytes());
    } else {
        out!("{}", reply.body);
    }
    reply.failure.map_or(Ok(()), Err)
}

/// `hoist events [--from SEQ] [--follow]` through the server, page by page.
pub async fn events(client: &Client, from: u64, follow: bool) -> Result<(), Error> {
    let mut next = from.max(1);
    loop {
        let (lines, more) = client.events_page(next).await?;
        for line in &lines {
            print_json_line(line);
        }
        if stdout_closed().is_some() {
            return Ok(());
        }
        match more {
            Some(more) => next = more,
            None if follow => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            None => return Ok(()),
        }
    }
}

/// `hoist login --server URL --token TOKEN`: checks the token against the server, then saves both.
pub async fn login(ctx: &Ctx) -> Result<(), Error> {
    let server = ctx
        .global
        .server
        .clone()
        .ok_or_else(|| Error::rejected("login: --server URL (or HOIST_SERVER) is required"))?;
    let token = ctx
        .global
        .token
        .clone()
        .ok_or_else(|| Error::rejected("login: --token TOKEN (or HOIST_TOKEN) is required"))?;
    Client::new(&server, Some(token.clone()))?
        .check_token()
        .await?;
    let path = login_path()
        .ok_or_else(|| Error::rejected("login: no config dir; set HOIST_LOGIN_FILE"))?;
    save(
        &path,
        &Login {
            server: server.clone(),
            token,
        },
    )
    .map_err(|e| Error::rejected(format!("login: cannot save {}: {e}", path.display())))?;
    if ctx.global.json {
        print_json(&serde_json::json!({"server": server, "saved": path}));
    } else {
        out!(
            "Logged in to {server}; the token is saved in {}\n",
            path.display()
        );
    }
    Ok(())
}

/// Writes the login readable by its owner only, whole or not at all.
fn save(path: &std::path::Path, login: &Login) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("json.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(&serde_json::to_vec_pretty(login).expect("a login serializes"))?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}
