//! A real nats-server per test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// Finds nats-server: `NATS_SERVER_BIN`, the project-local install, then `PATH`.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/nats-server/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    if let Some(path) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    }) {
        return Ok(path);
    }
    bail!("nats-server not found: run scripts/install-nats-server or set NATS_SERVER_BIN")
}

/// A nats-server with JetStream on a free loopback port and a temp store dir.
pub struct NatsServer {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
}

impl NatsServer {
    /// Starts a server on a port of its own choosing.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("keyledger-nats-")
            .tempdir()?;
        let mut server = Self {
            child: None,
            dir,
            port: 0,
        };
        server.spawn(None)?;
        Ok(server)
    }

    fn spawn(&mut self, port: Option<u16>) -> anyhow::Result<()> {
        let ports_dir = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats-server.log"))?;
        let child = Command::new(nats_server_bin()?)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &port_arg,
                "-js",
                "--http_port",
                "0",
            ])
            .arg("-sd")
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("cannot start nats-server")?;
        let ports_file = ports_dir.join(format!("nats-server_{}.ports", child.id()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = json["nats"][0].as_str()
            {
                let port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .context("ports file")?;
                self.port = port;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server did not start; see {}",
                    self.dir.path().join("nats-server.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The server's own log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the server: a
    /// hung server, whose connections stay open but answer nothing.
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        use nix::sys::signal::{Signal, kill};
        let child = self.child.as_ref().context("not running")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        kill(
            pid,
            if frozen {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            },
        )?;
        Ok(())
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let port = self.port;
        self.spawn(Some(port))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
