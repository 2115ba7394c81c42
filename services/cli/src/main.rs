//! `keyledger`: the one binary. `admin` and `node` run the services; `dev`
//! runs a whole local system (nats-server, admin, two nodes) in one go.

mod dev;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use keyledger_admin::{AdminConfig, AdminToken};
use keyledger_eventlog::{EventLog, FeedOptions, StreamOptions};

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
    #[command(
        after_help = "The admin token comes from KEYLEDGER_ADMIN_TOKEN or from the file named by \
        --admin-token-file (at least 16 characters). It is never accepted as a flag, so it stays out of \
        `ps` and shell history."
    )]
    Admin(AdminArgs),
    /// Run an API node: replay the stream, follow it, answer /v1/verify.
    Node(NodeArgs),
    /// Quick start: nats-server, an admin service and two nodes, in one process.
    #[command(
        after_help = "nats-server is found through NATS_SERVER_BIN, then PATH, then \
        .tools/nats-server/bin (scripts/install-nats-server puts a pinned one there). The admin \
        token is KEYLEDGER_ADMIN_TOKEN if set, else one made on first start and kept in the data dir."
    )]
    Dev(dev::DevArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// NATS server URL.
    #[arg(
        long,
        env = "KEYLEDGER_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// JetStream stream name.
    #[arg(long, env = "KEYLEDGER_STREAM", default_value = "KEYLEDGER")]
    stream: String,
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

impl Common {
    fn feed_options(&self) -> FeedOptions {
        FeedOptions {
            acknowledged: self.acknowledge_untrusted.iter().copied().collect(),
        }
    }
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyledger: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Cmd::Admin(args) => admin(args).await,
            Cmd::Node(args) => node(args).await,
            Cmd::Dev(args) => dev::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
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

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let token = admin_token(args.admin_token_file.as_ref())?;
    let log = EventLog::connect(&args.common.nats_url, &args.common.stream).await?;
    let admin = keyledger_admin::Admin::start(
        log,
        AdminConfig {
            token,
            stream: StreamOptions {
                replicas: usize::from(args.replicas),
            },
            feed: args.common.feed_options(),
        },
    )
    .await
    .context("cannot set up the stream")?;
    let listener = serve::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, stream = %args.common.stream, "admin listening");
    serve::serve(listener, admin.router(), serve::shutdown_signal()).await
}

async fn node(args: NodeArgs) -> anyhow::Result<()> {
    let log = EventLog::connect(&args.common.nats_url, &args.common.stream).await?;
    let node = keyledger_node::Node::start_with(log, args.common.feed_options());
    let listener = serve::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, stream = %args.common.stream, "node listening");
    serve::serve(listener, node.router(), serve::shutdown_signal()).await
}
