//! The command line as plain data (clap). Parsing has no side effects; `commands` turns these
//! into validated domain values and hands them to `hoist_control`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "hoist",
    version,
    about = "Numbered releases, promotion, rollback and audit for your apps, from an event log"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Embedded store directory (the default backend) [default: the platform data dir]
    #[arg(long, env = "HOIST_STORE", global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Use NATS JetStream at this URL instead of the embedded store
    #[arg(long, env = "HOIST_NATS_URL", global = true, value_name = "URL")]
    pub nats: Option<String>,
    /// JetStream stream name
    #[arg(
        long,
        env = "HOIST_STREAM",
        global = true,
        default_value = "HOIST",
        value_name = "NAME"
    )]
    pub stream: String,
    /// Where the read models of a NATS stream are cached [default: the platform cache dir]
    #[arg(long, env = "HOIST_CACHE", global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// NATS credentials file (JWT + nkey seed)
    #[arg(long, env = "HOIST_NATS_CREDS", global = true, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// Extra CA certificates (PEM) for a tls:// server signed by a private CA
    #[arg(long, env = "HOIST_NATS_TLS_CA", global = true, value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Replicas of the stream when hoist creates it (3 on a 3-node cluster)
    #[arg(long, env = "HOIST_NATS_REPLICAS", global = true, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
    /// Who is acting [env: HOIST_ACTOR] [default: git user.email, else $USER]. Under `audit`,
    /// `--actor` filters instead.
    // HOIST_ACTOR is read by `Ctx::actor`, not by clap: clap would also pour it into `audit`'s
    // `--actor` filter, which shares this argument's name.
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    /// Print one JSON document on stdout, nothing else
    #[arg(long, global = true)]
    pub json: bool,
    /// Run the command through a `hoist serve --listen` HTTP API instead of opening a store
    /// [default: the server `hoist login` saved, unless --store or --nats is given]
    #[arg(long, env = "HOIST_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for --server [default: the one `hoist login` saved]
    #[arg(
        long,
        env = "HOIST_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and show apps
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Record immutable builds
    #[command(subcommand)]
    Builds(BuildsCommand),
    /// New release of a build in an env
    Deploy(DeployArgs),
    /// Change config: every change is a new release
    #[command(subcommand)]
    Config(ConfigCommand),
    /// New release in the next env with the source's current build and the target's own config
    Promote(PromoteArgs),
    /// New release copying build and config of an earlier one
    Rollback(RollbackArgs),
    /// Release history of an env, newest first
    Releases(ReleasesArgs),
    /// Current release of every env of an app
    Status(StatusArgs),
    /// Build and config differences between two versions
    Diff(DiffArgs),
    /// Freeze an env: deploy, promote and config changes are rejected, rollback stays allowed
    Lock(LockArgs),
    /// Lift a lock
    Unlock(EnvArgs),
    /// Who changed what, when: events newest first
    Audit(AuditArgs),
    /// Raw events, one JSON object per line; export and import whole histories
    Events(EventsArgs),
    /// Where an env's releases are applied, and what happens when a rollout fails
    #[command(subcommand)]
    Envs(EnvsCommand),
    /// Reconcile one env now: apply its current release to its target and record the outcome
    Apply(ApplyArgs),
    /// The daemon: reconcile every env whose current release has not reached its target yet
    Serve(ServeArgs),
    /// Identities: their bearer tokens, roles on apps × envs, and chat links
    #[command(subcommand)]
    Access(AccessCommand),
    /// Check a token against a server and save both (file mode 0600) for later commands
    Login,
    /// Subscribers: signed webhooks, CloudEvents, Slack and Matrix messages of new events,
    /// delivered by `hoist serve` at least once, in order, with a delivery log
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// Maintenance of the read models
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write a realistic history through the real command path, then measure append, replay and
    /// queries beside the raw log
    Bench(BenchArgs),
    /// Shell completion script on stdout: `hoist completions bash > /etc/bash_completion.d/hoist`
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Manual page (roff) on stdout, of hoist or of one command: `hoist man deploy | man -l -`
    Man {
        /// A command, and its subcommand (`envs target`) [default: hoist itself]
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
    // issue 16
    /// Pin an env: it takes no auto-promotion, and a promotion only with --force, until unpinned
    Pin(PinArgs),
    /// Lift a pin (a rollback's too)
    Unpin(EnvArgs),
    /// What in an env's target differs from the release applied to it (exit 0 either way)
    Drift(EnvArgs),
    // issue 14: formation.
    /// An env's processes: their commands, replicas and ready replicas; `ps scale` sets replicas
    Ps(PsArgs),
    /// Host names routed to an env's web process
    #[command(subcommand)]
    Domains(DomainsCommand),
}

/// issue 14: `hoist ps APP --env ENV` and `hoist ps scale APP --env ENV TYPE=N...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PsArgs {
    #[command(subcommand)]
    pub scale: Option<PsCommand>,
    #[arg(required = true)]
    pub app: Option<String>,
    #[arg(long, required = true)]
    pub env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PsCommand {
    /// Set replicas per process type (web=3 worker=0): an event, not a release; rollbacks and
    /// promotions keep it
    Scale {
        #[command(flatten)]
        target: EnvArgs,
        #[arg(required = true, value_name = "TYPE=N")]
        counts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Route HOST (RFC 1123; a wildcard only as a leading `*.`) to the env's web process
    Add {
        #[command(flatten)]
        target: EnvArgs,
        host: String,
    },
    /// Stop routing HOST
    Remove {
        #[command(flatten)]
        target: EnvArgs,
        host: String,
    },
    /// The env's domains
    List {
        #[command(flatten)]
        target: EnvArgs,
    },
}

// issue 16
#[derive(Debug, Args)]
pub struct PinArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Why: shown by `status` and to whoever is refused
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Apps written to concurrently
    #[arg(long, default_value_t = 20)]
    pub apps: usize,
    /// Events to write (about: the last command of each worker may add one more)
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Write into the configured store instead of a scratch directory, to explore afterwards
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// A subscriber of the events appended after it; prints its signing secret once
    Add(HooksAddArgs),
    /// The hooks in force
    List,
    /// No more deliveries to the hook
    Remove { name: String },
    /// Send the hook a `ping` now, from here (not recorded)
    Test { name: String },
    /// The hook's deliveries, newest first
    Deliveries {
        name: String,
        /// At most this many
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Send one delivery again now (through `hoist serve`)
    Redeliver {
        name: String,
        #[arg(value_name = "DELIVERY_ID")]
        delivery: String,
    },
    /// A new signing secret; the previous one keeps signing beside it for --keep
    Rotate {
        name: String,
        /// A file holding the new whsec_ secret [default: a new one, shown once]
        #[arg(long, value_name = "FILE")]
        secret_file: Option<std::path::PathBuf>,
        /// How long the previous secret keeps signing too
        #[arg(long, default_value = "24h")]
        keep: String,
    },
}

#[derive(Debug, Args)]
pub struct HooksAddArgs {
    /// The hook's name: a DNS label
    pub name: String,
    /// Where to send: the endpoint, a Slack incoming-webhook URL, Slack's Web API base
    /// (https://slack.com/api, with --room and --token-file), or a Matrix homeserver
    #[arg(long)]
    pub url: String,
    /// standard-webhooks, cloudevents, slack or matrix
    #[arg(long, default_value = "standard-webhooks")]
    pub format: String,
    /// Only this app's events [default: every app's]
    #[arg(long)]
    pub app: Option<String>,
    /// Only this env's events [default: every env's]
    #[arg(long)]
    pub env: Option<String>,
    /// Comma-separated: release, rollout, lock, access, hook, all
    #[arg(long, default_value = "release,rollout,lock")]
    pub events: String,
    /// A file holding the whsec_ signing secret to use instead of a new one
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<std::path::PathBuf>,
    /// Matrix: the room id (!abc:example.org) to post in; Slack bot: the channel id (C0123ABCD)
    #[arg(long)]
    pub room: Option<String>,
    /// Matrix: a file holding the bot's access token; Slack bot: its xoxb- token
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Bearer tokens, for `--server` and the API (needs admin on every app)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Give IDENTITY a role on an app (or every app) and an env (or every env)
    Grant(GrantArgs),
    /// Take back exactly one grant (same role, app and env)
    Revoke(GrantArgs),
    /// The grants in force
    List {
        /// Only this identity's
        #[arg(long)]
        identity: Option<String>,
        /// Only those that apply to this app (on it, or on every app)
        #[arg(long)]
        app: Option<String>,
    },
    /// A chat user (slack:TEAM/USER, matrix:@user:server) acts as IDENTITY, with its roles
    Link {
        #[arg(value_name = "CHAT_ID")]
        chat_id: String,
        identity: String,
    },
    /// The chat user acts as nobody
    Unlink {
        #[arg(value_name = "CHAT_ID")]
        chat_id: String,
    },
    /// Whether IDENTITY may take ACTION (view, deploy, config, promote, rollback, lock, apply,
    /// reveal, admin) on the app or one env of it, and why; exit 0 either way
    Check {
        identity: String,
        action: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// A new token for IDENTITY, printed once (only its hash is kept)
    Create {
        identity: String,
        /// A label for the token: "CI", "ana's laptop"
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// It stops working after this span: 90d, 12h [default: never]
        #[arg(long, value_name = "SPAN")]
        expires: Option<String>,
    },
    /// Every token (revoked ones too), never the token itself
    List {
        /// Only this identity's
        #[arg(long)]
        identity: Option<String>,
    },
    /// The token opens nothing from now on
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    pub identity: String,
    /// viewer, deployer, operator or admin
    #[arg(long)]
    pub role: String,
    /// The app [default: every app]
    #[arg(long)]
    pub app: Option<String>,
    /// The env [default: every env]
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Replay the whole log into fresh read models, with progress; reports events/s
    Rebuild,
    /// Verify the store: the log opens and decodes (on NATS: lists messages on hoist's subjects
    /// that are not hoist commits, by sequence), every hash chain holds, the read models match a
    /// fresh fold of the log. Exit 1 naming what is wrong
    Check,
}

#[derive(Debug, Subcommand)]
pub enum EnvsCommand {
    /// Where an env's releases are applied: a Kubernetes cluster, a manifests directory, a
    /// command, or nowhere
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["kube", "manifests", "exec", "none"])))]
    Target {
        #[command(flatten)]
        target: EnvArgs,
        /// A Kubernetes cluster from the kubeconfig (KUBECONFIG, as kubectl reads it)
        #[arg(long)]
        kube: bool,
        /// Kubeconfig context [default: its current context]
        #[arg(long, requires = "kube", value_name = "CTX")]
        context: Option<String>,
        /// Namespace [default: the env's name]
        #[arg(long, requires = "kube", value_name = "NS")]
        namespace: Option<String>,
        /// Write YAML manifests into DIR (for Argo CD, Flux)
        #[arg(long, value_name = "DIR")]
        manifests: Option<PathBuf>,
        /// Run CMD with `sh -c`, the release as JSON on stdin, in an environment of only PATH,
        /// HOME, HOIST_APP, HOIST_ENV, HOIST_VERSION, HOIST_IMAGE and the --exec-env names
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Hand the variable NAME of the runner's environment on to the command (repeatable)
        #[arg(long, requires = "exec", value_name = "NAME")]
        exec_env: Vec<String>,
        /// Apply releases nowhere
        #[arg(long)]
        none: bool,
        /// The Ingress class of the env's domains (kube, manifests) [default: the cluster's]
        #[arg(long, value_name = "CLASS")]
        ingress_class: Option<String>,
        /// The Secret with the TLS certificate of the env's domains (kube, manifests)
        #[arg(long, value_name = "NAME")]
        tls_secret: Option<String>,
        /// The web process's readiness probe path, like /healthz (kube, manifests)
        #[arg(long, value_name = "PATH")]
        health_path: Option<String>,
    },
    /// What an env does by itself: roll back on a failed rollout, take the previous env's
    /// healthy release, heal drift. Settings not given stay as they are
    #[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)
        .args(["auto_rollback", "auto_promote", "after", "verify", "no_verify", "self_heal"])))]
    Policy {
        #[command(flatten)]
        target: EnvArgs,
        /// Roll back to the last healthy release when a rollout fails
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        auto_rollback: Option<String>,
        /// Promote into ENV the previous env's release once it has been healthy for --after
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        auto_promote: Option<String>,
        /// How long the previous env's release must have been healthy: 90s, 10m, 1h [default: 10m]
        #[arg(long, value_name = "SPAN")]
        after: Option<String>,
        /// Run CMD (`sh -c`, the release's JSON on stdin) before each auto-promotion: exit 0
        /// verifies it; its outcome is recorded, and a refused release is not promoted
        #[arg(long, value_name = "CMD", conflicts_with = "no_verify")]
        verify: Option<String>,
        /// Promote without a verification command
        #[arg(long)]
        no_verify: bool,
        /// Re-apply the release when its target drifts (off: record the drift and notify only)
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        self_heal: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Wait for the rollout to complete (kube targets) and record its health
    #[arg(long)]
    pub wait: bool,
    /// How long to wait for a rollout or an exec command, and for a release phase: 90s, 5m, 1h
    /// [default: 5m; a release phase 1h]
    #[arg(long, value_name = "SPAN")]
    pub timeout: Option<String>,
    /// Print the rendered objects and what would change; apply and record nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of serve's settings (`resync`, `timeout`, `poll`, as spans like "5m");
    /// flags override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// How often every env is reconciled again, whatever the log says: 30s, 5m [default: 60s]
    #[arg(long, value_name = "SPAN")]
    pub resync: Option<String>,
    /// How long to wait for one rollout or exec command [default: 5m]
    #[arg(long, value_name = "SPAN")]
    pub timeout: Option<String>,
    /// Embedded store: how often the log is read for new commits. NATS: how long one pull for
    /// deliveries waits before it is renewed [default: 100ms; on NATS 1s]
    #[arg(long, value_name = "SPAN")]
    pub poll: Option<String>,
    /// Serve the HTTP API on this address (`127.0.0.1:8080`) beside the reconciler [default: no
    /// listener]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// TLS certificate chain (PEM) for --listen
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM) for --listen
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    // issue 13
    /// How long a sign-in to the web UI lasts: 30m, 12h [default: 12h]
    #[arg(long, value_name = "SPAN")]
    pub web_session: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// New app with an ordered pipeline of environments
    Create {
        app: String,
        /// Environments in promotion order
        #[arg(long, value_delimiter = ',', default_value = "staging,production")]
        envs: Vec<String>,
    },
    /// Every app
    List,
    /// One app: pipeline, builds, current releases
    Show { app: String },
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// Record an immutable build; the image must be pinned by digest
    Register {
        app: String,
        /// repo@sha256:<64 hex>
        #[arg(long, value_name = "REF")]
        image: String,
        /// Source commit the build came from
        #[arg(long, value_name = "SHA")]
        commit: Option<String>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// A process type and its command, run with `sh -c` (repeatable): web='bin/server'
        /// [default: one web process running the image's entrypoint]
        #[arg(long = "process", value_name = "TYPE=CMD")]
        processes: Vec<String>,
        /// A Procfile (Heroku's format; `release:` sets the release command)
        #[arg(long, value_name = "FILE")]
        procfile: Option<PathBuf>,
        /// Run before each release of this build goes out (a Job on kube); its failure stops
        /// the release
        #[arg(long, value_name = "CMD")]
        release_command: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    pub app: String,
    #[arg(long)]
    pub env: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("artifact").required(true).args(["image", "build"])))]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Image pinned by digest (registers the build)
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// A registered build's id
    #[arg(long, value_name = "ID")]
    pub build: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// New release with these keys set
    Set {
        #[command(flatten)]
        target: EnvArgs,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Encrypt these values; they show as <redacted> unless revealed
        #[arg(long)]
        secret: bool,
    },
    /// New release without these keys
    Unset {
        #[command(flatten)]
        target: EnvArgs,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Current config of an env
    Get {
        #[command(flatten)]
        target: EnvArgs,
        /// Show secret values in clear
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    pub app: String,
    #[arg(long)]
    pub from: String,
    /// Target env [default: the next env in the pipeline]
    #[arg(long)]
    pub to: Option<String>,
    /// Promote into a pinned env too (recorded in the release's description)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Version to copy, `12` or `v12`, or `last-healthy` (the last release recorded healthy)
    /// [default: the release before the current one]. A rollback pins the env until `unpin`
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// At most N, newest first (N at least 1)
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// Answer as of this time (RFC 3339, or a span ago like 7d, 12h)
    #[arg(long, value_name = "T")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub app: String,
    /// Answer as of this time (RFC 3339, or a span ago like 7d, 12h)
    #[arg(long, value_name = "T")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    #[arg(value_name = "FROM")]
    pub from: String,
    #[arg(value_name = "TO")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditCommand>,
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long)]
    pub env: Option<String>,
    /// Only events by this actor
    #[arg(long)]
    pub actor: Option<String>,
    /// create, build, deploy, config, promote, rollback, lock, unlock, target, policy, rollout,
    /// access, scale, domain
    #[arg(long)]
    pub kind: Option<String>,
    /// RFC 3339, or a span ago like 7d, 12h, 30m
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// At most N, newest first (N at least 1)
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every app's hash chain; exit 1 naming the first broken link
    Verify {
        #[arg(long)]
        app: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub transfer: Option<EventsCommand>,
    /// First log sequence to print
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub from: u64,
    /// Keep printing new events as they are appended
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Every event as JSON lines on stdout: a full-fidelity backup (secrets stay sealed)
    Export,
    /// Restore JSON lines from stdin into this store; checks every hash, all or nothing
    Import,
}

/// A count flag (`--limit`): a whole number of at least 1. `0` asks for nothing and would print
/// "no releases yet", which is not true: a usage error (exit 2), like any malformed flag.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err("must be a whole number of at least 1".into()),
    }
}
