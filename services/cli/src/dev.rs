//! `keyledger dev`: a whole local system in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use keyledger_admin::{AdminConfig, AdminToken};
use keyledger_eventlog::{EventLog, StreamOptions};
use keyledger_events::SigningKey;
use keyledger_node::VerifyTracing;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tracing::Instrument;

use crate::serve;

#[derive(Args)]
pub(crate) struct DevArgs {
    /// Where dev keeps everything, across restarts: nats-server's store and
    /// log, the bootstrap token, the signing key (and its .pub) and the dev
    /// admin key. One dev at a time per data dir.
    #[arg(long, env = "KEYLEDGER_DATA_DIR", default_value = ".keyledger-dev")]
    data_dir: PathBuf,
    /// Port for the dev nats-server (loopback only).
    #[arg(long, env = "KEYLEDGER_DEV_NATS_PORT", default_value_t = 14222)]
    nats_port: u16,
    /// Admin API address.
    #[arg(long, env = "KEYLEDGER_ADMIN_LISTEN", default_value = "127.0.0.1:8080")]
    admin_listen: SocketAddr,
    /// Addresses of the API nodes, comma-separated: one node per address.
    #[arg(long, env = "KEYLEDGER_NODE_LISTEN", value_delimiter = ',', num_args = 1.., default_value = "127.0.0.1:8081,127.0.0.1:8082")]
    node_listen: Vec<SocketAddr>,
    /// JetStream stream name.
    #[arg(long, env = "KEYLEDGER_STREAM", default_value = "KEYLEDGER")]
    stream: String,
    #[command(flatten)]
    acknowledged: crate::Acknowledged,
}

/// Finds nats-server: `NATS_SERVER_BIN`, then `PATH`, then the project-local install.
fn find_nats_server() -> anyhow::Result<PathBuf> {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        let path = PathBuf::from(bin);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "NATS_SERVER_BIN is {} but there is no file there",
            path.display()
        );
    }
    let on_path = std::env::var_os("PATH").map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    if let Some(Some(path)) = on_path {
        return Ok(path);
    }
    let local = PathBuf::from(".tools/nats-server/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    bail!(
        "nats-server not found. Install it with scripts/install-nats-server (it puts a pinned \
         nats-server in .tools/nats-server/bin), or set NATS_SERVER_BIN to its path"
    )
}

/// Holds the data dir for this process alone until dropped: two nats-servers
/// on one store would each take writes the other never sees, and one side's
/// acknowledged changes would be lost.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = if holder.is_empty() {
            String::new()
        } else {
            format!(" (pid {holder})")
        };
        bail!(
            "{} is in use by another keyledger dev{who}: stop it, or give this one its own \
             --data-dir (with other ports)",
            data_dir.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

fn dev_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("KEYLEDGER_ADMIN_TOKEN") {
        return Ok(token);
    }
    let path = data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token: String = bytes.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    });
    write_private(&path, &format!("{token}\n"))?;
    Ok(token)
}

/// Writes a new file only its owner can read.
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The dev signing key: `KEYLEDGER_SIGNING_KEY` if set, else the one in the
/// data dir, made on first start (with its `.pub` next to it).
fn dev_signing_key(data_dir: &Path) -> anyhow::Result<(SigningKey, PathBuf)> {
    let path = data_dir.join("signing.key");
    let public = data_dir.join("signing.key.pub");
    let key = if std::env::var_os("KEYLEDGER_SIGNING_KEY").is_some() {
        crate::signing_key(None)?
    } else if path.is_file() {
        crate::signing_key(Some(&path))?
    } else {
        let key = SigningKey::generate().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        write_private(&path, &format!("{}\n", key.expose_secret_hex()))?;
        key
    };
    std::fs::write(&public, format!("{}\n", key.public_key()))
        .with_context(|| format!("cannot write {}", public.display()))?;
    Ok((key, public))
}

/// The dev admin key, kept in the data dir: made on first start with the
/// bootstrap token, through the admin API itself.
async fn dev_admin_key(
    data_dir: &Path,
    router: axum::Router,
    token: &str,
) -> anyhow::Result<String> {
    use tower::ServiceExt as _;
    let path = data_dir.join("admin-key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(key.trim().to_owned());
    }
    let request = axum::http::Request::post("/v1/keys")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("user-agent", "keyledger dev")
        .body(axum::body::Body::from(
            r#"{"name":"dev admin","admin":true}"#,
        ))?;
    let response = router.oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(key) = created.get("key").and_then(|k| k.as_str()) else {
        bail!(
            "could not create the dev admin key ({status}): {}; if {} was deleted, \
             create an admin key with the bootstrap token or start with a fresh --data-dir",
            created["error"]["message"].as_str().unwrap_or("no message"),
            path.display()
        );
    };
    write_private(&path, &format!("{key}\n"))?;
    Ok(key.to_owned())
}

/// Where the dev nats-server writes its pid.
const NATS_PID_FILE: &str = "nats-server.pid";

/// A dev that was killed (SIGKILL, a crash) could not stop its nats-server,
/// which would hold the port and the store. With the data dir's lock in hand,
/// any nats-server still running on this data dir is such a leftover: stop it.
async fn stop_leftover_nats(data_dir: &Path) {
    let pid_file = data_dir.join(NATS_PID_FILE);
    let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return;
    };
    let store = data_dir.join("nats");
    let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.first()
            .is_some_and(|bin| bin.ends_with(b"nats-server"))
            && args
                .iter()
                .any(|a| *a == store.as_os_str().as_encoded_bytes())
    });
    if ours {
        println!("stopping a nats-server (pid {pid}) left running by an earlier keyledger dev");
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if nix::sys::signal::kill(pid, None).is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file);
}

fn start_nats(bin: &Path, data_dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log_path = data_dir.join("nats-server.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let child = Command::new(bin)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "--server_name",
            "keyledger-dev",
        ])
        .arg("-sd")
        .arg(data_dir.join("nats"))
        .arg("-P")
        .arg(data_dir.join(NATS_PID_FILE))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        // Its own process group: a terminal's Ctrl-C reaches only us, and we
        // stop nats-server after the services that use it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    Ok(child)
}

async fn connect_when_up(
    url: &str,
    stream: &str,
    child: &mut Child,
    log: &Path,
) -> anyhow::Result<EventLog> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("nats-server exited ({status}); see {}", log.display());
        }
        match EventLog::connect(url, stream).await {
            Ok(log) => return Ok(log),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until `who` has replayed the stream.
async fn caught_up(
    mut feed: watch::Receiver<keyledger_eventlog::FeedState>,
    who: &str,
) -> anyhow::Result<()> {
    feed.wait_for(|f| f.caught_up)
        .await
        .map(|_| ())
        .with_context(|| format!("{who} stopped before it caught up"))
}

pub(crate) async fn run(args: DevArgs, verify_tracing: VerifyTracing) -> anyhow::Result<()> {
    let bin = find_nats_server()?;
    // Take every port before starting anything, so that a second `dev` fails
    // cleanly instead of attaching to the first one's NATS.
    let admin_listener = serve::bind(args.admin_listen, "--admin-listen").await?;
    let mut node_listeners = Vec::new();
    for addr in &args.node_listen {
        node_listeners.push(serve::bind(*addr, "--node-listen").await?);
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let _lock = lock_data_dir(&args.data_dir)?;
    stop_leftover_nats(&args.data_dir).await;
    let nats_probe = std::net::TcpListener::bind(("127.0.0.1", args.nats_port)).with_context(|| {
        format!(
            "NATS port 127.0.0.1:{} is in use (is another keyledger dev running?); pick another with --nats-port",
            args.nats_port
        )
    })?;
    drop(nats_probe);
    let token_text = dev_token(&args.data_dir)?;
    let token = AdminToken::new(&token_text).context("the admin token is not usable")?;
    let (signing, public_path) = dev_signing_key(&args.data_dir)?;
    let feed_options = args.acknowledged.feed_options(signing.public_key());
    let mut nats = start_nats(&bin, &args.data_dir, args.nats_port)?;
    let nats_url = format!("nats://127.0.0.1:{}", args.nats_port);
    let nats_log = args.data_dir.join("nats-server.log");
    let log = connect_when_up(&nats_url, &args.stream, &mut nats, &nats_log).await?;

    let admin = keyledger_admin::Admin::start(
        log.clone(),
        AdminConfig {
            token,
            stream: StreamOptions::default(),
            feed: feed_options.clone(),
            signing,
            rotate_to: None,
        },
    )
    .instrument(tracing::info_span!("admin"))
    .await
    .context("cannot set up the stream")?;
    caught_up(admin.feed(), "the admin service").await?;
    let admin_key = dev_admin_key(&args.data_dir, admin.router(), &token_text).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    let admin_addr = admin_listener.local_addr()?;
    servers.spawn(
        serve::serve(admin_listener, admin.router(), stopped(stop_rx.clone()))
            .instrument(tracing::info_span!("admin")),
    );
    let mut node_addrs = Vec::new();
    let mut nodes = Vec::new();
    for (i, listener) in node_listeners.into_iter().enumerate() {
        let span = tracing::info_span!("node", n = i + 1);
        let node = span.in_scope(|| {
            keyledger_node::Node::start(log.clone(), feed_options.clone())
                .with_verify_tracing(verify_tracing.clone())
        });
        node_addrs.push(listener.local_addr()?);
        servers.spawn(
            serve::serve(listener, node.router(), stopped(stop_rx.clone())).instrument(span),
        );
        nodes.push(node);
    }

    // The banner says the system is up: wait until every node validates.
    for node in &nodes {
        caught_up(node.feed(), "a node").await?;
    }
    print_banner(&Banner {
        data_dir: &args.data_dir,
        nats_url: &nats_url,
        nats_log: &nats_log,
        admin_addr,
        node_addrs: &node_addrs,
        admin_key: &admin_key,
        token: &token_text,
        public_key: &public_path,
    });
    println!("Press Ctrl-C to stop.");

    tokio::select! {
        () = serve::shutdown_signal() => {},
        Some(done) = servers.join_next() => {
            if let Ok(Err(e)) = done {
                tracing::error!("{e:#}");
            }
        },
        status = nats.wait() => {
            tracing::error!(?status, "nats-server exited; see {}", nats_log.display());
        }
    }
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    drop(nodes);
    drop(admin);
    log.close().await;
    stop_nats(&mut nats).await;
    println!("keyledger dev stopped");
    Ok(())
}

struct Banner<'a> {
    data_dir: &'a Path,
    nats_url: &'a str,
    nats_log: &'a Path,
    admin_addr: SocketAddr,
    node_addrs: &'a [SocketAddr],
    admin_key: &'a str,
    token: &'a str,
    public_key: &'a Path,
}

fn print_banner(b: &Banner<'_>) {
    println!(
        "keyledger dev is running (data in {}, kept across restarts)",
        b.data_dir.display()
    );
    println!(
        "  NATS:        {}  (log: {})",
        b.nats_url,
        b.nats_log.display()
    );
    println!("  admin API:   http://{}", b.admin_addr);
    println!(
        "  console:     http://{}/  (log in with the admin key)",
        b.admin_addr
    );
    for (i, addr) in b.node_addrs.iter().enumerate() {
        println!("  node {}:      http://{addr}", i + 1);
    }
    println!("  admin key:   {}", b.admin_key);
    println!("  bootstrap token: {}  (only creates admin keys)", b.token);
    println!(
        "  public key:  {}  (for nodes and auditors: keyledger audit verify --public-key …)",
        b.public_key.display()
    );
    println!();
    println!("Try:");
    println!("  export KEYLEDGER_ADMIN_KEY={}", b.admin_key);
    println!(
        "  curl -s -X POST http://{}/v1/keys -H \"Authorization: Bearer $KEYLEDGER_ADMIN_KEY\" \
         -H 'Content-Type: application/json' -d '{{\"name\":\"my first key\"}}'",
        b.admin_addr
    );
}

async fn stop_nats(nats: &mut Child) {
    if let Some(pid) = nats.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(5), nats.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = nats.kill().await;
}
