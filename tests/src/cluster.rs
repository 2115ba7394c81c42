//! A 3-node NATS cluster on loopback, started from the very config file
//! docker-compose.yml uses (`deploy/nats/nats.conf`), so the two cannot
//! drift apart. Each member gets free ports and a temp store; routes point
//! at all three. Fault-injection tests kill and restart members.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::{free_port, nats_server_bin};

/// The shared cluster config, as compose mounts it.
pub fn cluster_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/nats.conf")
}

struct Member {
    name: String,
    client: u16,
    monitor: u16,
    cluster: u16,
    child: Option<Child>,
}

/// Three nats-servers in one JetStream cluster.
pub struct NatsCluster {
    dir: TempDir,
    members: Vec<Member>,
}

impl NatsCluster {
    /// Starts three members and waits until JetStream has a meta leader.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("keyledger-cluster-")
            .tempdir()?;
        let members = (1..=3)
            .map(|i| Member {
                name: format!("nats-{i}"),
                client: free_port(),
                monitor: free_port(),
                cluster: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = Self { dir, members };
        for i in 0..3 {
            cluster.spawn(i)?;
        }
        cluster.wait_for_leader(Duration::from_secs(20))?;
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let routes: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("nats://127.0.0.1:{}", m.cluster))
            .collect();
        let store = self.dir.path().join(&self.members[i].name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(
            self.dir
                .path()
                .join(format!("{}.log", self.members[i].name)),
        )?;
        let m = &self.members[i];
        let child = Command::new(nats_server_bin()?)
            .arg("-c")
            .arg(cluster_config())
            .env("NATS_SERVER_NAME", &m.name)
            .env("NATS_LISTEN", format!("127.0.0.1:{}", m.client))
            .env("NATS_MONITOR", format!("127.0.0.1:{}", m.monitor))
            .env("NATS_STORE_DIR", &store)
            .env("NATS_CLUSTER_LISTEN", format!("127.0.0.1:{}", m.cluster))
            .env("NATS_ROUTE_1", &routes[0])
            .env("NATS_ROUTE_2", &routes[1])
            .env("NATS_ROUTE_3", &routes[2])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("cannot start nats-server")?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_for_leader(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let led = self.members.iter().filter(|m| m.child.is_some()).all(|m| {
                monitor_get(m.monitor, "/jsz")
                    .ok()
                    .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
                    .is_some_and(|jsz| jsz["meta_cluster"]["leader"].is_string())
            });
            if led {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the NATS cluster elected no JetStream leader in {limit:?}; logs in {}",
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A client URL naming every member, as a NATS client takes it.
    pub fn url(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("nats://127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`'s client URL.
    pub fn member_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.members[i].client)
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again with its store, and waits for a leader.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_for_leader(Duration::from_secs(20))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// GET on a monitoring port, over plain HTTP/1.0 (no client library needed).
fn monitor_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}
