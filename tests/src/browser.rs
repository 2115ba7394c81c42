//! A real headless Chromium, driven through chromedriver (WebDriver), for
//! the console tests. Both come from Debian (`chromium`, `chromium-driver`);
//! `scripts/test` installs them. Nothing is downloaded.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{eventually, free_port};

fn find_bin(env: &str, names: &[&str]) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(env) {
        return Ok(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} not found: install Debian's chromium and chromium-driver \
                 (scripts/test does), or set {env}",
                names[0]
            )
        })
}

/// chromedriver and one headless Chromium session with a fresh profile.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session of a
    /// `width` x `height` headless Chromium.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let chromium = find_bin("CHROMIUM_BIN", &["chromium", "chromium-browser"])?;
        let chromedriver = find_bin("CHROMEDRIVER_BIN", &["chromedriver"])?;
        let profile = tempfile::Builder::new()
            .prefix("keyledger-chromium-")
            .tempdir()?;
        let port = free_port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that stopping it stops every Chromium
            // process it started, even when a test fails midway.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", chromedriver.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(15), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        if !up {
            stop_group(&mut driver);
            bail!("chromedriver did not listen on {url}");
        }
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "goog:chromeOptions": { "binary": chromium, "args": args }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
        {
            Ok(client) => client,
            Err(e) => {
                stop_group(&mut driver);
                bail!("cannot open a Chromium session through chromedriver: {e}");
            }
        };
        Ok(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits (at most `limit`) until `script` returns `true`.
    pub async fn until(&self, limit: Duration, script: &str, args: Vec<Value>) -> bool {
        eventually(limit, || async {
            self.client
                .execute(script, args.clone())
                .await
                .is_ok_and(|v| v == Value::Bool(true))
        })
        .await
    }

    /// Clicks the element that `css` selects.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types `text` into the element that `css` selects, after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        element.clear().await.expect("clears");
        if !text.is_empty() {
            element.send_keys(text).await.expect("types");
        }
    }

    /// Saves a PNG screenshot of the whole window as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writes the screenshot");
        path
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        stop_group(&mut self.driver);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop_group(&mut self.driver);
    }
}

/// Kills chromedriver and everything in its process group.
fn stop_group(driver: &mut Child) {
    if let Ok(pid) = i32::try_from(driver.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = driver.wait();
}
