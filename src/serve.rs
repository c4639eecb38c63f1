//! `hoist serve`: this process's log (stderr, coloured only on a terminal without NO_COLOR),
//! then `hoist_control`'s daemon until SIGTERM or Ctrl-C.

use crate::cli::ServeArgs;
use crate::commands::Ctx;
use hoist_control::engine::Principal;
use hoist_control::reconcile::Options;
use hoist_control::serve::{Settings, SettingsFlags};
use hoist_control::Error;
use std::io::IsTerminal;
use tokio::signal::unix::{signal, SignalKind};

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> Result<(), Error> {
    let settings = Settings::resolve(&SettingsFlags {
        config: args.config,
        resync: args.resync,
        timeout: args.timeout,
        poll: args.poll,
    })?;
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
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let options = Options {
        wait: true,
        timeout: settings.timeout,
    };
    let context = ctx.hoist.reconcile_context(options);
    let owner = &Principal::Owner;
    ctx.hoist.serve(owner, &settings, context, shutdown).await
}
