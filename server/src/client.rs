//! The HTTP client the remote CLI (`hoist --server URL`) runs every command through: a
//! [`Request`] becomes its API.md route, and the server's [`hoist_control::Hoist::answer`] comes
//! back as the body — the JSON or, asked for `text/plain`, the human text — so the remote CLI
//! prints exactly what the local one prints, and the server's error becomes the same
//! [`Error`] (hence the same exit code). One request per connection: a CLI process sends one.

use hoist_control::api::Request;
use hoist_control::{Error, ErrorKind};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long connecting and each request may take before the server counts as unreachable. An
/// `apply --wait` waits for its rollout: a request gets its own timeout plus this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a long `audit` or `releases` without `--limit`).
const MAX_ANSWER: usize = 64 << 20;

/// A server and the token to show it.
#[derive(Debug, Clone)]
pub struct Client {
    tls: bool,
    host: String,
    port: u16,
    /// What the URL's path puts before `/v1` (a server behind a path prefix), without a slash at
    /// the end.
    prefix: String,
    token: Option<String>,
}

/// What to ask for: the JSON, or the human text for a table this wide.
#[derive(Debug, Clone, Copy)]
pub enum Accept {
    Json,
    Human { width: Option<u16> },
}

/// The server's answer: the body as it is to be printed, and the failure it also is (an `apply`
/// whose rollout failed).
#[derive(Debug)]
pub struct Reply {
    pub body: String,
    pub failure: Option<Error>,
}

impl Client {
    /// A client of the server at `url` (`http://host:port` or `https://…`, with an optional path
    /// prefix), showing `token` as `Authorization: Bearer`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::Rejected,
                format!("invalid --server {url:?}: {why}"),
            )
        };
        let uri: hyper::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("must start with http:// or https://")),
        };
        if url.contains('@') {
            return Err(invalid(
                "credentials go in --token or HOIST_TOKEN, never in the URL",
            ));
        }
        let host = uri.host().ok_or_else(|| invalid("no host"))?.to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if uri.query().is_some() {
            return Err(invalid("no query string"));
        }
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Client {
            tls,
            host,
            port,
            prefix,
            token,
        })
    }

    /// Runs `request` on the server.
    pub async fn answer(&self, request: &Request, accept: Accept) -> Result<Reply, Error> {
        let route = route(request);
        let timeout = match request {
            Request::Apply { options, .. } => options.timeout + CONNECT_TIMEOUT,
            _ => CONNECT_TIMEOUT,
        };
        let (status, headers, body) = tokio::time::timeout(timeout, self.send(&route, accept))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {timeout:?}")))??;
        if !status.is_success() {
            return Err(error_of(status, &body));
        }
        let failure = headers.get("hoist-failure").map(|code| {
            let message = headers
                .get("hoist-failure-message")
                .and_then(|m| m.to_str().ok())
                .map(crate::percent::decode)
                .unwrap_or_else(|| "the command failed".into());
            Error::new(kind_of_code(code.to_str().unwrap_or("")), message)
        });
        Ok(Reply { body, failure })
    }

    /// One page of `hoist events` lines from log sequence `from` on (what the token may view),
    /// and where the next page starts (`None`: the log's end, for now).
    pub async fn events_page(
        &self,
        from: u64,
    ) -> Result<(Vec<hoist_control::views::EventLine>, Option<u64>), Error> {
        let route = Route::new(Method::GET, "/v1/events".into()).query("from", Some(from));
        let (status, headers, body) =
            tokio::time::timeout(CONNECT_TIMEOUT, self.send(&route, Accept::Json))
                .await
                .map_err(|_| self.unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))??;
        if !status.is_success() {
            return Err(error_of(status, &body));
        }
        let lines = serde_json::from_str(&body)
            .map_err(|e| self.unreachable(format!("the events page is not hoist's: {e}")))?;
        // `Link: </v1/events?from=N>; rel="next"` while the log goes on.
        let next = headers
            .get(header::LINK)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split("from=").nth(1))
            .and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            });
        Ok((lines, next))
    }

    /// Whether the server takes the token: what `hoist login` checks before saving it.
    pub async fn check_token(&self) -> Result<(), Error> {
        self.answer(&Request::AppsList, Accept::Json)
            .await
            .map(|_| ())
    }

    async fn send(
        &self,
        route: &Route,
        accept: Accept,
    ) -> Result<(StatusCode, hyper::HeaderMap, String), Error> {
        let mut builder = hyper::Request::builder()
            .method(route.method.clone())
            .uri(format!("{}{}", self.prefix, route.path_and_query()))
            .header(header::HOST, &self.host)
            .header(
                header::USER_AGENT,
                concat!("hoist/", env!("CARGO_PKG_VERSION")),
            );
        builder = match accept {
            Accept::Json => builder.header(header::ACCEPT, "application/json"),
            Accept::Human { width } => {
                let builder = builder.header(header::ACCEPT, "text/plain");
                match width {
                    Some(width) => builder.header("hoist-width", width),
                    None => builder,
                }
            }
        };
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "--token: not a token (it holds characters no token has)",
                )
            })?;
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let body = match &route.body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body).expect("a JSON value serializes"))
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .expect("a request of valid parts");
        let response = if self.tls {
            let stream = self.connect_tls().await?;
            self.exchange(stream, request).await?
        } else {
            let stream = self.connect().await?;
            self.exchange(stream, request).await?
        };
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| self.unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| self.unreachable("the answer is not UTF-8 text".into()))?;
        Ok((parts.status, parts.headers, text))
    }

    async fn connect(&self) -> Result<TcpStream, Error> {
        TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.unreachable(e.to_string()))
    }

    async fn connect_tls(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| self.unreachable(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| self.unreachable(e.to_string()))?;
        let stream = self.connect().await?;
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| self.unreachable(format!("TLS: {e}")))
    }

    async fn exchange<S>(
        &self,
        stream: S,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(e.to_string()))
    }

    fn unreachable(&self, why: String) -> Error {
        let scheme = if self.tls { "https" } else { "http" };
        Error::unavailable(format!(
            "server {scheme}://{}:{}{} unreachable: {why}",
            self.host, self.port, self.prefix
        ))
    }
}

/// A request as API.md's route: method, path, query and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Route {
    fn new(method: Method, path: String) -> Self {
        Route {
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }

    fn path_and_query(&self) -> String {
        let mut text = self.path.clone();
        for (i, (name, value)) in self.query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(name);
            text.push('=');
            text.push_str(&crate::percent::encode(value));
        }
        text
    }
}

/// The route of `request` (API.md; the access routes as the server defines them).
pub fn route(request: &Request) -> Route {
    use Method as M;
    let app_path = |app: &dyn std::fmt::Display| format!("/v1/apps/{app}");
    let env_path = |app: &dyn std::fmt::Display, env: &dyn std::fmt::Display, what: &str| {
        format!("/v1/apps/{app}/envs/{env}/{what}")
    };
    let instant = |at: &Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    match request {
        Request::AppsCreate { app, envs } => {
            Route::new(M::POST, "/v1/apps".into()).body(json!({"app": app, "envs": envs}))
        }
        Request::AppsList => Route::new(M::GET, "/v1/apps".into()),
        Request::AppsShow { app } => Route::new(M::GET, app_path(app)),
        Request::BuildsRegister {
            app,
            image,
            commit,
            note,
            processes,
            release_command,
        } => Route::new(M::POST, format!("{}/builds", app_path(app))).body(json!({
            "image": image, "commit": commit, "note": note,
            "processes": processes, "release_command": release_command,
        })),
        Request::Deploy { app, env, artifact } => {
            let body = match artifact {
                hoist_control::engine::Artifact::Image(image) => json!({"image": image}),
                hoist_control::engine::Artifact::Build(build) => json!({"build": build}),
            };
            Route::new(M::POST, env_path(app, env, "deploy")).body(body)
        }
        Request::ConfigSet {
            app,
            env,
            values,
            secret,
        } => {
            let set: serde_json::Map<String, Value> = values
                .iter()
                .map(|(key, value)| (key.to_string(), Value::String(value.clone())))
                .collect();
            Route::new(M::POST, env_path(app, env, "config"))
                .body(json!({"set": set, "secret": secret}))
        }
        Request::ConfigUnset { app, env, keys } => {
            Route::new(M::POST, env_path(app, env, "config")).body(json!({"unset": keys}))
        }
        Request::ConfigGet { app, env, reveal } => Route::new(M::GET, env_path(app, env, "config"))
            .query("reveal", reveal.then_some("true")),
        Request::Promote { app, from, to } => {
            Route::new(M::POST, format!("{}/promote", app_path(app)))
                .body(json!({"from": from, "to": to}))
        }
        Request::Rollback { app, env, to } => Route::new(M::POST, env_path(app, env, "rollback"))
            .body(json!({"to": to.map(|v| v.get())})),
        Request::Releases {
            app,
            env,
            at,
            limit,
        } => Route::new(M::GET, env_path(app, env, "releases"))
            .query("limit", *limit)
            .query("at", instant(at)),
        Request::Status { app, at } => {
            Route::new(M::GET, format!("{}/status", app_path(app))).query("at", instant(at))
        }
        Request::Diff { app, env, from, to } => Route::new(M::GET, env_path(app, env, "diff"))
            .query("from", Some(from.get()))
            .query("to", Some(to.get())),
        Request::Lock { app, env, reason } => {
            Route::new(M::POST, env_path(app, env, "lock")).body(json!({"reason": reason}))
        }
        Request::Unlock { app, env } => Route::new(M::DELETE, env_path(app, env, "lock")),
        Request::Audit { query, limit } => Route::new(M::GET, "/v1/audit".into())
            .query("app", query.app.as_ref())
            .query("env", query.env.as_ref())
            .query("actor", query.actor.as_ref())
            .query("kind", query.kind.as_ref())
            .query("since", instant(&query.since))
            .query("until", instant(&query.until))
            .query("limit", *limit),
        Request::AuditVerify { app } => {
            Route::new(M::GET, "/v1/audit/verify".into()).query("app", app.as_ref())
        }
        Request::EnvsTarget { app, env, target } => {
            Route::new(M::POST, env_path(app, env, "target")).body(json!(target))
        }
        Request::EnvsPolicy { app, env, changes } => {
            let mut body = serde_json::Map::new();
            let mut put = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    body.insert(key.to_string(), value);
                }
            };
            put("auto_rollback", changes.auto_rollback.map(Value::Bool));
            put("auto_promote", changes.auto_promote.map(Value::Bool));
            put(
                "after",
                changes.after_secs.map(|s| Value::String(format!("{s}s"))),
            );
            // `"verify": null` drops the verification; absent leaves it.
            put(
                "verify",
                changes
                    .verify
                    .clone()
                    .map(|v| v.map_or(Value::Null, Value::String)),
            );
            put("self_heal", changes.self_heal.map(Value::Bool));
            Route::new(M::POST, env_path(app, env, "policy")).body(Value::Object(body))
        }
        Request::Apply {
            app,
            env,
            options,
            dry_run,
        } => Route::new(M::POST, env_path(app, env, "apply")).body(json!({
            "wait": options.wait,
            "timeout": format!("{}ms", options.timeout.as_millis()),
            "dry_run": dry_run,
        })),
        Request::TokenCreate {
            identity,
            name,
            expires_at,
        } => Route::new(M::POST, "/v1/access/tokens".into()).body(json!({
            "identity": identity, "name": name, "expires_at": instant(expires_at),
        })),
        Request::TokenList { identity } => {
            Route::new(M::GET, "/v1/access/tokens".into()).query("identity", identity.as_ref())
        }
        Request::TokenRevoke { id } => Route::new(M::DELETE, format!("/v1/access/tokens/{id}")),
        Request::Grant { identity, grant } => {
            Route::new(M::POST, "/v1/access/grants".into()).body(grant_body(identity, grant))
        }
        Request::Revoke { identity, grant } => {
            Route::new(M::POST, "/v1/access/grants/revoke".into()).body(grant_body(identity, grant))
        }
        Request::AccessList { identity, app } => Route::new(M::GET, "/v1/access/grants".into())
            .query("identity", identity.as_ref())
            .query("app", app.as_ref()),
        Request::Link { chat_id, identity } => Route::new(M::POST, "/v1/access/links".into())
            .body(json!({"chat_id": chat_id.to_string(), "identity": identity})),
        Request::Unlink { chat_id } => Route::new(M::POST, "/v1/access/links/unlink".into())
            .body(json!({"chat_id": chat_id.to_string()})),
        Request::AccessCheck {
            identity,
            action,
            scope,
        } => Route::new(M::GET, "/v1/access/check".into())
            .query("identity", Some(identity))
            .query("action", Some(action))
            .query("app", scope.app.as_ref())
            .query("env", scope.env.as_ref()),
        Request::HooksAdd { add } => Route::new(M::POST, "/v1/hooks".into()).body(json!({
            "name": add.name, "url": add.url, "format": add.format.as_str(),
            "app": add.app, "env": add.env,
            "events": add.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","),
            "secret": add.secret, "room": add.room,
        })),
        Request::HooksList => Route::new(M::GET, "/v1/hooks".into()),
        Request::HooksRemove { name } => Route::new(M::DELETE, format!("/v1/hooks/{name}")),
        Request::HooksTest { name } => Route::new(M::POST, format!("/v1/hooks/{name}/test")),
        Request::HooksDeliveries { name, limit } => {
            Route::new(M::GET, format!("/v1/hooks/{name}/deliveries")).query("limit", *limit)
        }
        Request::HooksRotate { name, secret, keep } => {
            Route::new(M::POST, format!("/v1/hooks/{name}/rotate"))
                .body(json!({"secret": secret, "keep_seconds": keep.as_secs()}))
        }
        Request::HooksRedeliver { name, delivery } => Route::new(
            M::POST,
            format!("/v1/hooks/{name}/deliveries/{delivery}/redeliver"),
        ),
        // issue 16
        Request::Pin { app, env, reason } => {
            Route::new(M::POST, env_path(app, env, "pin")).body(json!({"reason": reason}))
        }
        Request::Unpin { app, env } => Route::new(M::DELETE, env_path(app, env, "pin")),
        Request::RollbackLastHealthy { app, env } => {
            Route::new(M::POST, env_path(app, env, "rollback"))
                .body(json!({"to": hoist_control::api::LAST_HEALTHY}))
        }
        Request::PromoteForced { app, from, to } => {
            Route::new(M::POST, format!("{}/promote", app_path(app)))
                .body(json!({"from": from, "to": to, "force": true}))
        }
        Request::Drift { app, env } => Route::new(M::POST, env_path(app, env, "drift")),
        // issue 14
        Request::Ps { app, env } => Route::new(M::GET, env_path(app, env, "ps")),
        Request::PsScale { app, env, replicas } => {
            Route::new(M::POST, env_path(app, env, "ps/scale")).body(json!({"replicas": replicas}))
        }
        Request::DomainsList { app, env } => Route::new(M::GET, env_path(app, env, "domains")),
        Request::DomainsAdd { app, env, host } => {
            Route::new(M::POST, env_path(app, env, "domains")).body(json!({"host": host}))
        }
        Request::DomainsRemove { app, env, host } => {
            Route::new(M::POST, env_path(app, env, "domains/remove")).body(json!({"host": host}))
        }
    }
}

fn grant_body(
    identity: &hoist_control::engine::Actor,
    grant: &hoist_control::engine::Grant,
) -> Value {
    json!({
        "identity": identity, "role": grant.role.to_string(),
        "app": grant.app, "env": grant.env,
    })
}

/// The server's error as the CLI's: API.md's body `{"error": {"code", "message"}}`.
fn error_of(status: StatusCode, body: &str) -> Error {
    let parsed: Option<(String, String)> = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let error = v.get("error")?;
        Some((
            error.get("code")?.as_str()?.to_string(),
            error.get("message")?.as_str()?.to_string(),
        ))
    });
    match parsed {
        Some((code, message)) => Error::new(kind_of_code(&code), message),
        None => Error::unavailable(format!(
            "the server answered {status} without an error body hoist knows"
        )),
    }
}

/// API.md's error code as the kind the CLI exits with.
fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        "unauthenticated" => ErrorKind::Unauthenticated,
        "forbidden" => ErrorKind::Denied,
        "not_found" => ErrorKind::NotFound,
        "conflict" => ErrorKind::Conflict,
        "unavailable" => ErrorKind::Unavailable,
        // `rejected` and `bad_request` (what the CLI validated already): the input's fault.
        _ => ErrorKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_or_an_unknown_scheme_is_refused() {
        for url in [
            "ftp://x",
            "http://ana:pw@host",
            "host:8080",
            "http://host/?token=x",
        ] {
            assert!(Client::new(url, None).is_err(), "{url}");
        }
        let client = Client::new("https://hoist.example/prefix/", None).unwrap();
        assert_eq!(
            (client.tls, client.port, client.prefix.as_str()),
            (true, 443, "/prefix")
        );
    }
}
