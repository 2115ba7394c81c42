//! Admin and nodes on port 0 against a test's own nats-server, and the HTTP
//! helpers the scenarios use.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use keyledger_admin::{Admin, AdminConfig, AdminToken};
use keyledger_eventlog::{EventLog, FeedOptions, StreamOptions};
use keyledger_events::{PublicKey, SigningKey};
use keyledger_node::Node;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::NatsServer;

/// Polls `check` every 5 ms until it returns true, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `keyledger` binary built next to this binary (a bench in
/// `target/<profile>/`, or a test in `target/<profile>/deps/`).
pub fn keyledger_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let here = exe.parent().context("binary location")?;
    let candidates = [Some(here), here.parent()];
    if let Some(bin) = candidates
        .into_iter()
        .flatten()
        .map(|d| d.join("keyledger"))
        .find(|b| b.is_file())
    {
        return Ok(bin);
    }
    bail!(
        "keyledger not found next to {}: run `cargo build -p keyledger-cli` first (scripts/test does)",
        exe.display()
    )
}

/// A router served on a loopback port until stopped.
struct Served {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Served {
    async fn start(router: axum::Router) -> anyhow::Result<Self> {
        let limits = keyledger_http::Limits {
            // Short, so that tests can show the limits at work.
            header_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            ..keyledger_http::Limits::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(keyledger_http::serve(listener, router, limits, async {
            let _ = rx.await;
        }));
        Ok(Self {
            url,
            stop: Some(tx),
            task,
        })
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// An admin service serving on a loopback port.
pub struct RunningAdmin {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The service.
    pub admin: Admin,
    served: Served,
}

/// An API node serving on a loopback port.
pub struct RunningNode {
    /// Base URL.
    pub url: String,
    /// The node.
    pub node: Node,
    served: Served,
}

impl RunningAdmin {
    /// Starts an admin service on `stream` at `nats_url`, with `token` as the
    /// bootstrap token, signing with `signing`.
    pub async fn start(
        nats_url: &str,
        stream: &str,
        token: &str,
        signing: &SigningKey,
    ) -> anyhow::Result<Self> {
        let config = AdminConfig {
            token: AdminToken::new(token)?,
            stream: StreamOptions::default(),
            feed: FeedOptions::new(signing.public_key()),
            signing: signing.clone(),
            rotate_to: None,
        };
        Self::start_config(nats_url, stream, config).await
    }

    /// Starts an admin service with a full configuration.
    pub async fn start_config(
        nats_url: &str,
        stream: &str,
        config: AdminConfig,
    ) -> anyhow::Result<Self> {
        let log = EventLog::connect(nats_url, stream).await?;
        let admin = Admin::start(log, config).await?;
        let mut feed = admin.feed();
        tokio::time::timeout(Duration::from_secs(10), feed.wait_for(|f| f.caught_up))
            .await
            .context("admin did not catch up with the stream")??;
        let served = Served::start(admin.router()).await?;
        Ok(Self {
            url: served.url.clone(),
            admin,
            served,
        })
    }

    /// Stops serving and stops the feed.
    pub async fn stop(self) {
        self.served.stop().await;
    }
}

impl RunningNode {
    /// Starts a node on `stream` at `nats_url`, trusting `trust` as the first signer.
    pub async fn start(nats_url: &str, stream: &str, trust: PublicKey) -> anyhow::Result<Self> {
        Self::start_with(nats_url, stream, FeedOptions::new(trust)).await
    }

    /// Starts a node with what its feed trusts and operator decisions.
    pub async fn start_with(
        nats_url: &str,
        stream: &str,
        options: FeedOptions,
    ) -> anyhow::Result<Self> {
        let log = EventLog::connect(nats_url, stream).await?;
        Self::serve(Node::start(log, options)).await
    }

    /// Serves a node that the test started itself.
    pub async fn serve(node: Node) -> anyhow::Result<Self> {
        let served = Served::start(node.router()).await?;
        Ok(Self {
            url: served.url.clone(),
            node,
            served,
        })
    }

    /// Stops serving and stops the feed.
    pub async fn stop(self) {
        self.served.stop().await;
    }
}

/// A key as the create call returned it.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    /// Key id.
    pub id: String,
    /// The raw key (shown once).
    pub key: String,
    /// Public prefix.
    pub prefix: String,
    /// Stream sequence of the `Created` event.
    pub seq: u64,
}

/// A whole keyledger: nats-server, one admin, `n` nodes.
pub struct System {
    /// The test's own nats-server.
    pub nats: NatsServer,
    /// The admin service.
    pub admin: RunningAdmin,
    /// The nodes.
    pub nodes: Vec<RunningNode>,
    /// The credential `admin_call` uses: an admin key made with the bootstrap token.
    pub token: String,
    /// The bootstrap token (it can only create the first admin keys).
    pub bootstrap: String,
    /// The key admin signs events with.
    pub signing: SigningKey,
    /// Stream name.
    pub stream: String,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl System {
    /// nats-server, admin and two nodes.
    pub async fn start() -> anyhow::Result<Self> {
        Self::with_nodes(2).await
    }

    /// nats-server, admin and `n` nodes, all ready.
    pub async fn with_nodes(n: usize) -> anyhow::Result<Self> {
        let nats = NatsServer::start()?;
        let bootstrap = "test-admin-token-0123456789".to_owned();
        let signing = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let stream = "KEYLEDGER".to_owned();
        let admin = RunningAdmin::start(&nats.url(), &stream, &bootstrap, &signing).await?;
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(RunningNode::start(&nats.url(), &stream, signing.public_key()).await?);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let token = bootstrap_admin_key(&http, &admin.url, &bootstrap).await?;
        let system = Self {
            nats,
            admin,
            nodes,
            token,
            bootstrap,
            signing,
            stream,
            http,
        };
        system.wait_ready().await?;
        Ok(system)
    }

    /// Starts another admin service on this system's NATS, with the same
    /// bootstrap token and signing key.
    pub async fn start_admin(&self, stream: &str) -> anyhow::Result<RunningAdmin> {
        RunningAdmin::start(&self.nats.url(), stream, &self.bootstrap, &self.signing).await
    }

    /// Starts another node on `stream`, trusting this system's signing key.
    pub async fn start_node(&self, stream: &str) -> anyhow::Result<RunningNode> {
        RunningNode::start(&self.nats.url(), stream, self.signing.public_key()).await
    }

    /// Links and signs raw event objects onto the chain's current tip with
    /// this system's signing key, as admin would: for events admin would
    /// never write itself (a type from the future). Returns the message text.
    pub async fn sign_raw(&self, events: Vec<Value>) -> String {
        let status: Value = self
            .http
            .get(format!("{}/v1/status", self.admin.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("admin answers")
            .json()
            .await
            .expect("status JSON");
        let tip =
            keyledger_events::EventHash::from_hex(status["chain"]["tip"].as_str().expect("tip"))
                .expect("a hash");
        let position = status["chain"]["position"].as_u64().expect("position");
        let chain = keyledger_events::Chain::resume(position, tip, self.signing.public_key());
        let signed = chain
            .sign_values(events, &self.signing, None)
            .expect("signs");
        String::from_utf8(signed.bytes).expect("JSON text")
    }

    /// Waits until admin and every node answer `/readyz` with 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let mut urls = vec![self.admin.url.clone()];
        urls.extend(self.nodes.iter().map(|n| n.url.clone()));
        for url in urls {
            if !becomes_ready(&self.http, &url, Duration::from_secs(10)).await {
                bail!("{url} did not become ready");
            }
        }
        Ok(())
    }

    /// Calls the admin API with the admin token. Returns status and JSON body.
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("admin answers");
        let status = response.status();
        let text = response.text().await.expect("admin body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a key and checks the answer's shape.
    pub async fn create_key(&self, name: &str, read_only: bool) -> CreatedKey {
        let (status, body) = self
            .admin_call(
                Method::POST,
                "/v1/keys",
                Some(json!({ "name": name, "read_only": read_only })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        CreatedKey {
            id: body["id"].as_str().expect("id").to_owned(),
            key: body["key"].as_str().expect("key").to_owned(),
            prefix: body["prefix"].as_str().expect("prefix").to_owned(),
            seq: body["seq"].as_u64().expect("seq"),
        }
    }

    /// PATCHes a key; returns status and body.
    pub async fn update_key(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.admin_call(Method::PATCH, &format!("/v1/keys/{id}"), Some(body))
            .await
    }

    /// DELETEs a key; returns status and body.
    pub async fn remove_key(&self, id: &str) -> (StatusCode, Value) {
        self.admin_call(Method::DELETE, &format!("/v1/keys/{id}"), None)
            .await
    }

    /// Asks node `i` to verify `key` for `method` (sent as X-Forwarded-Method).
    pub async fn verify(&self, i: usize, key: &str, method: &str) -> StatusCode {
        verify_at(&self.http, &self.nodes[i].url, key, method).await
    }

    /// The statuses every node gives.
    pub async fn verify_all(&self, key: &str, method: &str) -> Vec<StatusCode> {
        let mut out = Vec::new();
        for node in &self.nodes {
            out.push(verify_at(&self.http, &node.url, key, method).await);
        }
        out
    }

    /// Waits (bounded) until every node has applied `seq`.
    pub async fn wait_applied(&self, seq: u64) {
        for node in &self.nodes {
            let ok = eventually(Duration::from_secs(5), || async {
                applied_seq(&self.http, &node.url).await >= seq
            })
            .await;
            assert!(ok, "{} did not apply seq {seq}", node.url);
        }
    }

    /// Every message in the stream, in order: (seq, subject, payload).
    pub async fn stream_messages(&self) -> Vec<(u64, String, Vec<u8>)> {
        let log = EventLog::connect(&self.nats.url(), &self.stream)
            .await
            .expect("connect");
        let head = log.head().await.expect("head");
        let mut out = Vec::new();
        for seq in 1..=head {
            if let Some(m) = log.read(seq).await.expect("read") {
                out.push((m.seq, m.subject, m.payload.to_vec()));
            }
        }
        out
    }
}

/// Creates an admin key with the bootstrap token and returns it.
pub async fn bootstrap_admin_key(
    http: &reqwest::Client,
    admin_url: &str,
    bootstrap: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{admin_url}/v1/keys"))
        .bearer_auth(bootstrap)
        .json(&json!({ "name": "test admin", "admin": true }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status != StatusCode::CREATED {
        bail!("bootstrap admin key: {status} {body}");
    }
    body["key"]
        .as_str()
        .map(str::to_owned)
        .context("no key in the create answer")
}

/// Verifies `key` at a node, with `method` as `X-Forwarded-Method`.
pub async fn verify_at(
    http: &reqwest::Client,
    node_url: &str,
    key: &str,
    method: &str,
) -> StatusCode {
    http.get(format!("{node_url}/v1/verify"))
        .header("authorization", format!("Bearer {key}"))
        .header("x-forwarded-method", method)
        .send()
        .await
        .expect("node answers")
        .status()
}

/// Waits (at most `limit`) until `base_url/readyz` answers 200.
pub async fn becomes_ready(http: &reqwest::Client, base_url: &str, limit: Duration) -> bool {
    eventually(limit, || async {
        http.get(format!("{base_url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await
}

/// A node's (or admin's) applied sequence, from `/v1/status`.
pub async fn applied_seq(http: &reqwest::Client, node_url: &str) -> u64 {
    let Ok(r) = http.get(format!("{node_url}/v1/status")).send().await else {
        return 0;
    };
    r.json::<Value>()
        .await
        .ok()
        .and_then(|v| v["applied_seq"].as_u64())
        .unwrap_or(0)
}
