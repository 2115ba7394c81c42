//! Running the real `keyledger` binary as a child process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::keyledger_bin;

/// A free loopback port (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `keyledger` child process whose stdout and stderr go to files.
pub struct Process {
    child: Option<Child>,
    /// Its stdout.
    pub stdout: PathBuf,
    /// Its stderr.
    pub stderr: PathBuf,
}

impl Process {
    /// Starts `keyledger <args>` with `envs`, writing output under `dir` as `<name>.out` / `<name>.err`.
    pub fn spawn(
        name: &str,
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let mut command = Command::new(keyledger_bin()?);
        // Hermetic: nothing from the developer's shell configures the child.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KEYLEDGER_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("cannot start keyledger")?;
        Ok(Self {
            child: Some(child),
            stdout,
            stderr,
        })
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system) it has used so far, from `/proc` (Linux).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.pid().context("not running")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces), from field 3 on.
        let rest = stat.rsplit_once(')').context("stat format")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..13)
            .context("stat fields")?
            .iter()
            .map(|f| f.parse::<u64>())
            .sum::<Result<u64, _>>()?;
        // Linux reports these in clock ticks of 1/100 s (USER_HZ).
        Ok(Duration::from_millis(ticks * 10))
    }

    /// Sends SIGTERM and waits (at most 15 s) for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends `signal` and waits (at most 15 s) for the exit.
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("already stopped")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, signal)?;
        self.wait(Duration::from_secs(15))
    }

    /// Waits for the process to exit by itself, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("already stopped")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("process did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it wrote so far, stdout then stderr.
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }
}

impl Drop for Process {
    /// A test that fails midway still stops its process, gently first, so
    /// that `keyledger dev` can stop the nats-server it started (which runs in
    /// its own process group and would outlive a SIGKILL).
    fn drop(&mut self) {
        if self.child.is_some() && self.terminate().is_ok() {
            return;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
