//! `keyledger keys …`: the admin API from scripts and terminals.
//!
//! Every subcommand is one or two calls to the admin HTTP API. Output is a
//! table for people, or the API's own JSON with `--json`. Errors print the
//! API's code and message and exit 1.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: KeysCmd,
}

#[derive(Args)]
struct ClientArgs {
    /// The admin API's base URL.
    #[arg(
        long,
        env = "KEYLEDGER_ADMIN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    admin_url: String,
    /// File holding the admin key to act with (else KEYLEDGER_ADMIN_KEY; else
    /// the bootstrap token from KEYLEDGER_ADMIN_TOKEN or --admin-token-file,
    /// which can only create admin keys).
    #[arg(
        long,
        env = "KEYLEDGER_ADMIN_KEY_FILE",
        value_name = "FILE",
        global = true
    )]
    admin_key_file: Option<PathBuf>,
    /// File holding the bootstrap token, when there is no admin key yet.
    #[arg(
        long,
        env = "KEYLEDGER_ADMIN_TOKEN_FILE",
        value_name = "FILE",
        global = true
    )]
    admin_token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key. Prints it once: it is never shown again.
    Create {
        /// Display name (1 to 200 characters).
        name: String,
        /// Allow writes (POST, PUT, PATCH, DELETE…). Keys are read-only unless asked.
        #[arg(long)]
        read_write: bool,
        /// An admin key (manages keys through the admin API; never accepted by nodes).
        #[arg(long)]
        admin: bool,
    },
    /// List keys, optionally filtered by name or prefix.
    List {
        /// Filter: a case-insensitive part of the name, or the leading characters of the key.
        #[arg(long, short)]
        query: Option<String>,
        /// Keys per page (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Go on from this cursor (printed after a page that has more).
        #[arg(long)]
        cursor: Option<String>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Show one key.
    Get {
        /// The key's id, or its prefix (the leading characters of the key).
        key: String,
    },
    /// Change a key's name, scope or state.
    Update {
        /// The key's id, or its prefix.
        key: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Read-only (true) or read-write (false).
        #[arg(long, value_name = "true|false")]
        read_only: Option<bool>,
        /// Enabled (true) or disabled (false).
        #[arg(long, value_name = "true|false")]
        enabled: Option<bool>,
    },
    /// Disable a key: every node rejects it at once.
    Disable {
        /// The key's id, or its prefix.
        key: String,
    },
    /// Enable a disabled key.
    Enable {
        /// The key's id, or its prefix.
        key: String,
    },
    /// Remove a key for good (its history stays in the stream).
    Remove {
        /// The key's id, or its prefix.
        key: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

/// The admin API, with the credential it is called with.
struct Api {
    http: reqwest::Client,
    base: String,
    credential: String,
}

/// An error answer of the admin API.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
struct ApiError {
    status: u16,
    code: String,
    message: String,
}

impl ClientArgs {
    fn credential(&self) -> anyhow::Result<String> {
        let from_file = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .with_context(|| format!("cannot read {}", path.display()))
        };
        if let Some(path) = &self.admin_key_file {
            return from_file(path);
        }
        if let Some(key) = std::env::var("KEYLEDGER_ADMIN_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
        {
            return Ok(key.trim().to_owned());
        }
        if let Some(path) = &self.admin_token_file {
            return from_file(path);
        }
        if let Some(token) = std::env::var("KEYLEDGER_ADMIN_TOKEN")
            .ok()
            .filter(|k| !k.trim().is_empty())
        {
            return Ok(token.trim().to_owned());
        }
        bail!(
            "no admin credential: set KEYLEDGER_ADMIN_KEY (or --admin-key-file FILE) to an admin key; \
             keyledger dev keeps one in .keyledger-dev/admin-key"
        )
    }
}

impl Api {
    fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = args.admin_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--admin-url must start with http:// or https://, like http://127.0.0.1:8080");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("keyledger-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base,
            credential: args.credential()?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.credential);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the admin API at {}: {}",
                self.base,
                root_cause(&e)
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the admin API's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        Err(ApiError {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("error").to_owned(),
            message: error["message"]
                .as_str()
                .map_or_else(|| format!("the admin API answered {status}"), str::to_owned),
        }
        .into())
    }

    /// The key an argument names: an id, or a prefix that exactly one key has.
    async fn resolve(&self, key: &str) -> anyhow::Result<Value> {
        if uuid_like(key) {
            return self
                .call(reqwest::Method::GET, &format!("/v1/keys/{key}"), None)
                .await;
        }
        if keyledger_events::ApiKey::appears_in(key) {
            bail!(
                "that looks like a whole API key (not repeated here): give the key's id, or its \
                 prefix (its first 8 characters)"
            );
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) || key.len() > 8 {
            bail!("{key:?} is neither a key id nor a key prefix (up to 8 letters and digits)");
        }
        let listing = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/keys?q={key}&limit=500"),
                None,
            )
            .await?;
        let matches: Vec<&Value> = listing["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["prefix"].as_str().is_some_and(|p| p.starts_with(key)))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("no key has the prefix {key}"),
            many => bail!(
                "{} keys have the prefix {key}: give more characters, or the id",
                many.len()
            ),
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn id_of(view: &Value) -> anyhow::Result<String> {
    view["id"]
        .as_str()
        .map(str::to_owned)
        .context("the admin API answered a key without an id")
}

pub(crate) async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        KeysCmd::Create {
            name,
            read_write,
            admin,
        } => {
            let mut body = json!({ "name": name, "admin": admin });
            if read_write {
                body["read_only"] = json!(false);
            } else if !admin {
                body["read_only"] = json!(true);
            }
            let created = api
                .call(reqwest::Method::POST, "/v1/keys", Some(body))
                .await?;
            if json {
                print_json(&created)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "Created {}", describe(&created))?;
                print_fields(&mut out, &created)?;
                writeln!(
                    out,
                    "  key:      {}",
                    created["key"].as_str().unwrap_or_default()
                )?;
            }
            eprintln!(
                "This is the only time the key is shown: store it now. keyledger keeps only its hash."
            );
        }
        KeysCmd::List {
            query,
            limit,
            cursor,
            all,
        } => list(&api, query.as_deref(), limit, cursor, all, json).await?,
        KeysCmd::Get { key } => {
            let view = api.resolve(&key).await?;
            show(&view, json)?;
        }
        KeysCmd::Update {
            key,
            name,
            read_only,
            enabled,
        } => {
            let mut change = serde_json::Map::new();
            if let Some(name) = name {
                change.insert("name".into(), json!(name));
            }
            if let Some(read_only) = read_only {
                change.insert("read_only".into(), json!(read_only));
            }
            if let Some(enabled) = enabled {
                change.insert("enabled".into(), json!(enabled));
            }
            if change.is_empty() {
                bail!("nothing to change: give --name, --read-only or --enabled");
            }
            let id = id_of(&api.resolve(&key).await?)?;
            patch(&api, &id, Value::Object(change), json, "Updated").await?;
        }
        KeysCmd::Disable { key } => {
            let id = id_of(&api.resolve(&key).await?)?;
            patch(&api, &id, json!({ "enabled": false }), json, "Disabled").await?;
        }
        KeysCmd::Enable { key } => {
            let id = id_of(&api.resolve(&key).await?)?;
            patch(&api, &id, json!({ "enabled": true }), json, "Enabled").await?;
        }
        KeysCmd::Remove { key, yes } => {
            let view = api.resolve(&key).await?;
            let id = id_of(&view)?;
            if !yes
                && !confirm(&format!(
                    "Remove {}? Every node rejects it at once.",
                    describe(&view)
                ))?
            {
                eprintln!("Not removed.");
                return Ok(ExitCode::from(1));
            }
            let removed = api
                .call(reqwest::Method::DELETE, &format!("/v1/keys/{id}"), None)
                .await?;
            if json {
                print_json(&removed)?;
            } else {
                println!("Removed {} (seq {})", describe(&view), removed["seq"]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn patch(api: &Api, id: &str, change: Value, json: bool, done: &str) -> anyhow::Result<()> {
    let view = api
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(change),
        )
        .await?;
    if json {
        print_json(&view)
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{done} {}", describe(&view))?;
        print_fields(&mut out, &view)?;
        Ok(())
    }
}

async fn list(
    api: &Api,
    query: Option<&str>,
    limit: u32,
    mut cursor: Option<String>,
    all: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    loop {
        let mut url = reqwest::Url::parse("http://x/v1/keys")?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(q) = query {
            url.query_pairs_mut().append_pair("q", q);
        }
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let page = api.call(reqwest::Method::GET, &path, None).await?;
        keys.extend(page["keys"].as_array().cloned().unwrap_or_default());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if !all || cursor.is_none() {
            break;
        }
    }
    if json {
        return print_json(&json!({ "keys": keys, "next_cursor": cursor }));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "{:<36}  {:<8}  {:<10}  {:<8}  {:<5}  {:<20}  name",
        "id", "prefix", "scope", "state", "admin", "created"
    )?;
    for k in &keys {
        writeln!(
            out,
            "{:<36}  {:<8}  {:<10}  {:<8}  {:<5}  {:<20}  {}",
            k["id"].as_str().unwrap_or_default(),
            k["prefix"].as_str().unwrap_or_default(),
            scope(k),
            state(k),
            if k["admin"] == true { "admin" } else { "-" },
            k["created_at"]
                .as_str()
                .unwrap_or_default()
                .get(..19)
                .unwrap_or_default(),
            k["name"],
        )?;
    }
    out.flush()?;
    drop(out);
    let counted = match keys.len() {
        1 => "1 key".to_owned(),
        n => format!("{n} keys"),
    };
    match cursor {
        Some(c) => eprintln!("{counted}; more with --cursor {c} (or --all)"),
        None => eprintln!("{counted}"),
    }
    Ok(())
}

fn scope(k: &Value) -> &'static str {
    if k["read_only"] == true {
        "read-only"
    } else {
        "read-write"
    }
}

fn state(k: &Value) -> &'static str {
    if k["enabled"] == true {
        "enabled"
    } else {
        "disabled"
    }
}

fn describe(k: &Value) -> String {
    format!(
        "{}{} key {} ({})",
        if k["admin"] == true { "admin " } else { "" },
        scope(k),
        k["name"],
        k["prefix"].as_str().unwrap_or_default()
    )
}

fn print_fields(out: &mut impl Write, k: &Value) -> std::io::Result<()> {
    let text = |f: &str| k[f].as_str().unwrap_or_default().to_owned();
    writeln!(out, "  id:       {}", text("id"))?;
    writeln!(out, "  prefix:   {}", text("prefix"))?;
    writeln!(out, "  name:     {}", k["name"])?;
    writeln!(out, "  scope:    {}", scope(k))?;
    writeln!(out, "  state:    {}", state(k))?;
    writeln!(out, "  admin:    {}", k["admin"] == true)?;
    writeln!(out, "  created:  {}", text("created_at"))?;
    writeln!(out, "  changed:  {}", text("updated_at"))?;
    if let Some(seq) = k["seq"].as_u64().or_else(|| k["version"].as_u64()) {
        writeln!(out, "  seq:      {seq}")?;
    }
    if let Some(why) = k["untrusted"].as_str() {
        writeln!(out, "  FROZEN:   {why}")?;
    }
    Ok(())
}

fn show(view: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", describe(view))?;
    print_fields(&mut out, view)?;
    Ok(())
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not removing without confirmation: pass --yes (stdin is not a terminal to ask on)");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[derive(Args)]
pub(crate) struct HealthcheckArgs {
    /// The URL to ask. By default the readiness probe of the service on
    /// KEYLEDGER_LISTEN (0.0.0.0 is asked on 127.0.0.1), else 127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
}

/// `keyledger healthcheck`: 0 when the service answers 2xx within 3 s.
pub(crate) async fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = args.url.clone().unwrap_or_else(|| {
        let listen = std::env::var("KEYLEDGER_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let local = listen
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]");
        format!("http://{local}/readyz")
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("{url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {}", root_cause(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}
