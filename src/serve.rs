//! `hoist serve`: this process's log (stderr, coloured only on a terminal without NO_COLOR),
//! then `hoist_control`'s daemon and, with `--listen`, the HTTP API (`hoist_server`) beside it,
//! both until SIGTERM or Ctrl-C: the listener stops taking connections and lets the requests in
//! flight finish, the reconciler lets its reconciles finish.

use crate::cli::ServeArgs;
use crate::commands::Ctx;
use hoist_control::engine::Principal;
use hoist_control::reconcile::Options;
use hoist_control::serve::{Settings, SettingsFlags};
use hoist_control::Error;
use std::io::IsTerminal;
use tokio::signal::unix::{signal, SignalKind};

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<(), Error> {
    // issue 13
    let session_lifetime = match &args.web_session {
        Some(text) => hoist_control::time::parse_span("--web-session", text)?,
        None => hoist_server::web::SESSION_LIFETIME,
    };
    let settings = Settings::resolve(&SettingsFlags {
        config: args.config,
        resync: args.resync,
        timeout: args.timeout,
        poll: args.poll,
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    })?;
    // Read before anything runs: a bad certificate fails the command at once.
    let tls = settings
        .tls
        .as_ref()
        .map(|files| hoist_server::Tls::from_pem_files(&files.cert, &files.key))
        .transpose()
        .map_err(Error::rejected)?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::colour(std::io::stderr().is_terminal()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
                // The NATS client logs every connection at info: one per store access.
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .init();
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| Error::rejected(format!("cannot listen for SIGTERM: {e}")))?;
    let (stop, stopping) = hoist_server::Stop::new();
    let stop = std::sync::Arc::new(stop);
    // Bound before anything runs: an address in use fails the command at once.
    let listener = match settings.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    let signals = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.stop();
        }
    });
    let api = async {
        let Some(listener) = listener else {
            return Ok(());
        };
        let web = hoist_server::WebSettings {
            session_lifetime,
            secure_cookies: tls.is_some(),
            ..Default::default()
        };
        let router = hoist_server::router_with_web(
            ctx.hoist.clone(),
            stopping.clone(),
            settings.slack_signing_secret.clone(),
            web,
        );
        hoist_server::serve(listener, router, tls, stopping.clone())
            .await
            .map_err(|e| Error::unavailable(format!("the HTTP API stopped: {e}")))
    };
    let options = Options {
        wait: true,
        timeout: settings.timeout,
        // issue 14: a release phase gets an hour, as on Heroku.
        release_timeout: None,
    };
    let context = ctx.hoist.reconcile_context(options);
    let owner = &Principal::Owner;
    let mut reconciler_stopping = stopping.clone();
    let reconciler = async {
        let shutdown = async move { reconciler_stopping.wait().await };
        let served = ctx.hoist.serve(owner, &settings, context, shutdown).await;
        // A reconciler that fails (the store cannot be opened) takes the API down with it.
        stop.stop();
        served
    };
    let (served, listened) = tokio::join!(reconciler, api);
    signals.abort();
    served.and(listened)
}
