//! `keyledger`: the one binary. `admin` and `node` run the services; `dev`
//! runs a whole local system (nats-server, admin, two nodes) in one go.

mod audit;
mod dev;
mod keys;
mod serve;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use keyledger_admin::{AdminConfig, AdminToken};
use keyledger_eventlog::{EventLog, FeedOptions, StreamOptions};
use keyledger_events::{PublicKey, SigningKey};
use keyledger_node::VerifyTracing;

/// How traces are switched on, for the services' `--help`.
macro_rules! traces_help {
    () => {
        "Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP, e.g. http://collector:4318) to \
        export them; OTEL_SERVICE_NAME names this process (default keyledger-<command>); the other \
        standard OTEL_* variables (sampler, batch, headers, timeout) apply. Logs: RUST_LOG and \
        --log-format."
    };
}

#[derive(Parser)]
#[command(
    name = "keyledger",
    version,
    about = "API keys as events on NATS JetStream, validated in process on every API node"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "KEYLEDGER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the management API (creates the stream if it does not exist).
    #[command(after_help = concat!(
        "The admin token comes from KEYLEDGER_ADMIN_TOKEN or from the file named by \
        --admin-token-file (at least 16 characters). It is never accepted as a flag, so it stays out of \
        `ps` and shell history.\n\n",
        traces_help!()
    ))]
    Admin(AdminArgs),
    /// Run an API node: replay the stream, follow it, answer /v1/verify.
    #[command(after_help = traces_help!())]
    Node(NodeArgs),
    /// For auditors: export, verify and replay the history, online or from an exported file.
    #[command(
        after_help = "Every subcommand reads the stream (--nats-url, --stream) or an export \
        (--from FILE.jsonl, offline: nothing else needs to run). Give --public-key (the admin's \
        signing.key.pub) to check signatures against the key you trust."
    )]
    Audit(audit::AuditArgs),
    /// Manage API keys through the admin API: create, list, get, update, disable, enable, remove.
    #[command(
        after_help = "Talks to --admin-url (KEYLEDGER_ADMIN_URL) with an admin key from KEYLEDGER_ADMIN_KEY \
        or --admin-key-file. Tables for people, --json for scripts; errors exit 1 with the API's code \
        and message."
    )]
    Keys(keys::KeysArgs),
    /// Exit 0 when a keyledger service answers its readiness probe (for a container HEALTHCHECK).
    Healthcheck(keys::HealthcheckArgs),
    /// Make a new Ed25519 signing key for keyledger admin (and its public key for nodes and auditors).
    Keygen(KeygenArgs),
    /// Quick start: nats-server, an admin service and two nodes, in one process.
    #[command(after_help = concat!(
        "nats-server is found through NATS_SERVER_BIN, then PATH, then \
        .tools/nats-server/bin (scripts/install-nats-server puts a pinned one there). The admin \
        token is KEYLEDGER_ADMIN_TOKEN if set, else one made on first start and kept in the data dir.\n\n",
        traces_help!()
    ))]
    Dev(dev::DevArgs),
}

/// Where the stream is.
#[derive(Args, Clone)]
pub(crate) struct Connection {
    /// NATS server URL.
    #[arg(
        long,
        env = "KEYLEDGER_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub(crate) nats_url: String,
    /// JetStream stream name.
    #[arg(long, env = "KEYLEDGER_STREAM", default_value = "KEYLEDGER")]
    pub(crate) stream: String,
}

/// Operator decisions about untrusted messages.
#[derive(Args, Clone)]
pub(crate) struct Acknowledged {
    /// Stream sequences of messages you have inspected and judged to be garbage
    /// (comma-separated). They are passed over instead of making keys fail closed.
    #[arg(
        long,
        env = "KEYLEDGER_ACKNOWLEDGE_UNTRUSTED",
        value_delimiter = ',',
        value_name = "SEQ"
    )]
    acknowledge_untrusted: Vec<u64>,
}

impl Acknowledged {
    /// What a feed trusts (`trust`, the first signer) and passes over.
    pub(crate) fn feed_options(&self, trust: PublicKey) -> FeedOptions {
        FeedOptions {
            trust,
            acknowledged: self.acknowledge_untrusted.iter().copied().collect(),
        }
    }
}

#[derive(Args, Clone)]
struct Common {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    acknowledged: Acknowledged,
    /// File holding the public key of the ledger's first signing key (64 hex
    /// characters); trust follows the chain's rotations from there. Or set
    /// KEYLEDGER_PUBLIC_KEY to the key itself.
    #[arg(long, env = "KEYLEDGER_PUBLIC_KEY_FILE", value_name = "FILE")]
    public_key: Option<PathBuf>,
}

impl Common {
    fn feed_options(&self, trust: PublicKey) -> FeedOptions {
        self.acknowledged.feed_options(trust)
    }
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to write the signing key (created 0600; never overwritten). The
    /// public key goes next to it, with `.pub` appended.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
struct AdminArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on.
    #[arg(long, env = "KEYLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// File holding the admin token (instead of KEYLEDGER_ADMIN_TOKEN).
    #[arg(long, env = "KEYLEDGER_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// File holding the Ed25519 signing key (64 hex characters; `keyledger
    /// keygen` makes one). Or set KEYLEDGER_SIGNING_KEY to the key itself (dev only).
    #[arg(long, env = "KEYLEDGER_SIGNING_KEY_FILE", value_name = "FILE")]
    signing_key_file: Option<PathBuf>,
    /// Rotate to this signing key: the next event announces its public key and
    /// every later event is signed with it. Restart with it as
    /// --signing-key-file afterwards (keep --public-key on the first key).
    #[arg(
        long,
        env = "KEYLEDGER_ROTATE_TO_SIGNING_KEY_FILE",
        value_name = "FILE"
    )]
    rotate_to_signing_key_file: Option<PathBuf>,
    /// Stream replicas when admin creates the stream (3 on a NATS cluster).
    #[arg(long, env = "KEYLEDGER_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    replicas: u8,
}

#[derive(Args)]
struct NodeArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on.
    #[arg(long, env = "KEYLEDGER_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Seconds the node may go without confirming it has applied the
    /// stream's head (NATS unreachable, say) before every key fails closed
    /// (503 stale) until it has caught up again.
    #[arg(long, env = "KEYLEDGER_MAX_STALENESS", value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    max_staleness: std::time::Duration,
    /// When traces are exported (OTEL_EXPORTER_OTLP_ENDPOINT), the share of
    /// /v1/verify requests that get a span (0 to 1), besides those whose
    /// caller traces them (a sampled traceparent).
    #[arg(long, env = "KEYLEDGER_VERIFY_TRACE_RATIO", value_name = "RATIO", default_value_t = DEFAULT_VERIFY_TRACE_RATIO, value_parser = parse_ratio)]
    verify_trace_ratio: f64,
}

/// One in a hundred verifications gets a span, when traces are exported.
const DEFAULT_VERIFY_TRACE_RATIO: f64 = 0.01;

/// A share from 0 to 1, such as `0.01`.
fn parse_ratio(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{raw:?} is not a share from 0 to 1, like 0.01"))
}

/// A positive number of seconds, such as `5` or `0.5`.
pub(crate) fn parse_seconds(raw: &str) -> Result<std::time::Duration, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| {
            format!("{raw:?} is not a number of seconds above 0 and at most 86400, like 5 or 0.5")
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Auditors read reports, not service logs.
    let quiet = matches!(
        cli.command,
        Cmd::Audit(_) | Cmd::Keygen(_) | Cmd::Keys(_) | Cmd::Healthcheck(_)
    );
    // Only the services export traces; a `keys`, `audit` or `healthcheck`
    // run in the same environment does not start an exporter.
    let service = match &cli.command {
        Cmd::Admin(_) => Some("keyledger-admin"),
        Cmd::Node(_) => Some("keyledger-node"),
        Cmd::Dev(_) => Some("keyledger-dev"),
        _ => None,
    };
    let telemetry = match telemetry::Telemetry::init(
        cli.log_format,
        if quiet { "warn" } else { "info" },
        service,
    ) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("keyledger: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyledger: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verify_tracing = |ratio: f64| {
        if telemetry.exporting() {
            VerifyTracing::sampled(ratio)
        } else {
            VerifyTracing::off()
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Cmd::Admin(args) => admin(args).await.map(|()| ExitCode::SUCCESS),
            Cmd::Node(args) => {
                let tracing = verify_tracing(args.verify_trace_ratio);
                node(args, tracing).await.map(|()| ExitCode::SUCCESS)
            }
            Cmd::Audit(args) => audit::run(args).await,
            Cmd::Keys(args) => keys::run(args).await,
            Cmd::Healthcheck(args) => keys::healthcheck(&args).await,
            Cmd::Keygen(args) => keygen(&args).map(|()| ExitCode::SUCCESS),
            Cmd::Dev(args) => dev::run(args, verify_tracing(DEFAULT_VERIFY_TRACE_RATIO))
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    });
    drop(runtime);
    telemetry.shutdown();
    match outcome {
        Ok(code) => code,
        // The reader went away (`keyledger audit replay | head`): nothing to say.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keyledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the admin token from the environment or a file.
pub(crate) fn admin_token(file: Option<&PathBuf>) -> anyhow::Result<AdminToken> {
    let raw = match (file, std::env::var("KEYLEDGER_ADMIN_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?,
        (None, Ok(token)) => token,
        (None, Err(_)) => anyhow::bail!(
            "no admin token: set KEYLEDGER_ADMIN_TOKEN or pass --admin-token-file (see keyledger admin --help)"
        ),
    };
    AdminToken::new(&raw).context("the admin token is not usable")
}

fn read_key_text(file: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the {what} file {}", file.display()))
}

/// Reads the signing key from a file or `KEYLEDGER_SIGNING_KEY`.
pub(crate) fn signing_key(file: Option<&PathBuf>) -> anyhow::Result<SigningKey> {
    let text = match (file, std::env::var("KEYLEDGER_SIGNING_KEY")) {
        (Some(path), _) => read_key_text(path, "signing key")?,
        (None, Ok(text)) => text,
        (None, Err(_)) => anyhow::bail!(
            "no signing key: pass --signing-key-file (make one with `keyledger keygen --out FILE`) \
             or set KEYLEDGER_SIGNING_KEY"
        ),
    };
    SigningKey::from_hex(&text).context("the signing key is not usable")
}

/// Reads the trusted public key from a file or `KEYLEDGER_PUBLIC_KEY`.
pub(crate) fn public_key(file: Option<&PathBuf>) -> anyhow::Result<Option<PublicKey>> {
    let text = match (file, std::env::var("KEYLEDGER_PUBLIC_KEY")) {
        (Some(path), _) => read_key_text(path, "public key")?,
        (None, Ok(text)) => text,
        (None, Err(_)) => return Ok(None),
    };
    PublicKey::from_hex(&text)
        .map(Some)
        .context("the public key is not usable")
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let key = SigningKey::generate().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let public = args.out.with_file_name(format!(
        "{}.pub",
        args.out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    dev::write_private(&args.out, &format!("{}\n", key.expose_secret_hex()))?;
    std::fs::write(&public, format!("{}\n", key.public_key()))
        .with_context(|| format!("cannot write {}", public.display()))?;
    println!(
        "signing key: {} (keep it secret; give it to keyledger admin)",
        args.out.display()
    );
    println!(
        "public key:  {} (give it to nodes and auditors)",
        public.display()
    );
    println!("{}", key.public_key());
    Ok(())
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let token = admin_token(args.admin_token_file.as_ref())?;
    let signing = signing_key(args.signing_key_file.as_ref())?;
    let rotate_to = args
        .rotate_to_signing_key_file
        .as_ref()
        .map(|f| signing_key(Some(f)))
        .transpose()?;
    let trust =
        public_key(args.common.public_key.as_ref())?.unwrap_or_else(|| signing.public_key());
    let log = EventLog::connect(
        &args.common.connection.nats_url,
        &args.common.connection.stream,
    )
    .await?;
    let admin = keyledger_admin::Admin::start(
        log,
        AdminConfig {
            token,
            stream: StreamOptions {
                replicas: usize::from(args.replicas),
            },
            feed: args.common.feed_options(trust),
            signing,
            rotate_to,
        },
    )
    .await
    .context("cannot set up the stream")?;
    let listener = serve::bind(args.listen, "--listen").await?;
    tracing::info!(addr = %listener.local_addr()?, stream = %args.common.connection.stream, "admin listening");
    serve::serve(listener, admin.router(), serve::shutdown_signal()).await
}

async fn node(args: NodeArgs, verify_tracing: VerifyTracing) -> anyhow::Result<()> {
    let trust = public_key(args.common.public_key.as_ref())?.context(
        "no public key to verify events with: pass --public-key FILE (the admin's signing key's .pub) \
         or set KEYLEDGER_PUBLIC_KEY",
    )?;
    let log = EventLog::connect(
        &args.common.connection.nats_url,
        &args.common.connection.stream,
    )
    .await?;
    let node = keyledger_node::Node::start_with_max_staleness(
        log,
        args.common.feed_options(trust),
        args.max_staleness,
    )
    .with_verify_tracing(verify_tracing);
    let listener = serve::bind(args.listen, "--listen").await?;
    tracing::info!(addr = %listener.local_addr()?, stream = %args.common.connection.stream, "node listening");
    serve::serve(listener, node.router(), serve::shutdown_signal()).await
}
