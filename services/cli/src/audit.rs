//! `keyledger audit`: export, verify and replay the history, online (NATS) or
//! offline (an exported JSON-lines file, with nothing else running).

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use keyledger_eventlog::EventLog;
use keyledger_events::{ApiKey, EventHash, ExportLine, KeyHash, PublicKey};
use keyledger_projections::{Access, Audit, Cut, HistoryEntry, KeyAt, Record, validity};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCmd,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Write the history as JSON lines: one stored message per line, with its sequence and time.
    Export(ExportArgs),
    /// Walk the whole history: check the chain and every signature, report gaps and tampering, print the head.
    Verify(VerifyArgs),
    /// Print every key as it was at a point of the history.
    Replay(ReplayArgs),
    /// A key's whole timeline: what changed, who changed it, when, from where.
    History(HistoryArgs),
    /// Read a raw key from stdin and print its id and whole history ("this key leaked").
    Lookup(LookupArgs),
    /// Was a key valid (for a method) at a time? Exit 0 for yes, 3 for no.
    WasValid(WasValidArgs),
}

#[derive(Args)]
struct Source {
    /// Read an exported file instead of NATS: no NATS and no keyledger service needed.
    #[arg(long, value_name = "FILE.jsonl")]
    from: Option<PathBuf>,
    /// The stream to read when not --from.
    #[command(flatten)]
    connection: crate::Connection,
    /// The public key of the ledger's first signing key (the admin's
    /// `signing.key.pub`). Without it, the first event's signer is trusted and
    /// a warning says so. Or set KEYLEDGER_PUBLIC_KEY to the key itself.
    /// (export copies messages as they are and checks nothing.)
    #[arg(long, env = "KEYLEDGER_PUBLIC_KEY_FILE", value_name = "FILE")]
    public_key: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    source: Source,
    /// Start at this stream sequence.
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    since: u64,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    source: Source,
    /// A head recorded earlier (`SEQ:HASH`, as verify prints it): also catch
    /// truncation and history rewritten from a point on.
    #[arg(long, value_name = "SEQ:HASH")]
    expect_head: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    source: Source,
    /// A stream sequence, or an RFC 3339 time (e.g. 2026-12-01T10:00:00Z).
    #[arg(long, value_name = "TIME|SEQ")]
    at: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
struct HistoryArgs {
    #[command(flatten)]
    source: Source,
    /// The key's id, or its public prefix (or the prefix's leading characters).
    key: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Args)]
struct LookupArgs {
    #[command(flatten)]
    source: Source,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// A key given on the command line by mistake: refused, and never repeated.
    #[arg(hide = true, num_args = 0..)]
    misplaced: Vec<String>,
}

#[derive(Args)]
struct WasValidArgs {
    #[command(flatten)]
    source: Source,
    /// The key's id, or its public prefix (or the prefix's leading characters).
    key: String,
    /// A stream sequence, or an RFC 3339 time.
    #[arg(long, value_name = "TIME|SEQ")]
    at: String,
    /// The HTTP method the key was used with.
    #[arg(long, default_value = "GET")]
    method: String,
}

/// A message read from either source.
struct Message {
    seq: u64,
    time: OffsetDateTime,
    subject: String,
    payload: Vec<u8>,
}

impl Message {
    fn record(&self) -> Record<'_> {
        Record {
            seq: self.seq,
            time: self.time,
            subject: &self.subject,
            payload: &self.payload,
        }
    }
}

/// Prints progress on stderr every two seconds.
struct Progress {
    what: &'static str,
    started: Instant,
    last: Instant,
    count: u64,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        let now = Instant::now();
        Self {
            what,
            started: now,
            last: now,
            count: 0,
        }
    }

    fn tick(&mut self, seq: u64) {
        self.count += 1;
        if self.last.elapsed() > Duration::from_secs(2) {
            self.last = Instant::now();
            eprintln!(
                "{}: {} messages (at sequence {seq}), {:.0}/s",
                self.what,
                self.count,
                rate(self.count, self.started.elapsed())
            );
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Calls `visit` with every message of the source from `since` on, in order.
async fn read(
    source: &Source,
    since: u64,
    what: &'static str,
    mut visit: impl FnMut(Message) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut progress = Progress::new(what);
    let mut failure = None;
    if let Some(path) = &source.from {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: ExportLine = serde_json::from_str(&line).with_context(|| {
                format!("{} line {}: not an export line", path.display(), n + 1)
            })?;
            if parsed.seq < since {
                continue;
            }
            let payload = parsed
                .payload_bytes()
                .with_context(|| format!("{} line {}", path.display(), n + 1))?;
            progress.tick(parsed.seq);
            visit(Message {
                seq: parsed.seq,
                time: parsed.time,
                subject: parsed.subject,
                payload,
            })?;
        }
        return Ok(());
    }
    let log = EventLog::connect(&source.connection.nats_url, &source.connection.stream).await?;
    log.for_each_message(since, None, |m| {
        progress.tick(m.seq);
        match visit(Message {
            seq: m.seq,
            time: m.time,
            subject: m.subject,
            payload: m.payload.to_vec(),
        }) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })
    .await?;
    log.close().await;
    failure.map_or(Ok(()), Err)
}

/// The trust anchor: the given public key, or the first event's signer (with a warning).
fn anchor(source: &Source, first: &Message) -> anyhow::Result<PublicKey> {
    if let Some(key) = crate::public_key(source.public_key.as_ref())? {
        return Ok(key);
    }
    let named = serde_json::from_slice::<Value>(&first.payload)
        .ok()
        .and_then(|v| v["events"][0]["signer"].as_str().map(str::to_owned))
        .and_then(|s| PublicKey::from_hex(&s).ok())
        .context("no --public-key given, and the first message names no signer")?;
    eprintln!(
        "warning: no --public-key given: trusting the first event's signer {named}; \
         compare it with the admin's signing.key.pub"
    );
    Ok(named)
}

/// Walks the whole source into an audit.
async fn walk(
    source: &Source,
    cut: Cut,
    timelines: bool,
    watch: Option<u64>,
    what: &'static str,
) -> anyhow::Result<Option<Audit>> {
    let mut audit: Option<Audit> = None;
    read(source, 1, what, |m| {
        if audit.is_none() {
            let mut a = Audit::new(anchor(source, &m)?, cut);
            if timelines {
                a = a.with_timelines();
            }
            if let Some(seq) = watch {
                a = a.watching(seq);
            }
            audit = Some(a);
        }
        if let Some(a) = audit.as_mut() {
            a.feed(&m.record());
        }
        Ok(())
    })
    .await?;
    Ok(audit)
}

fn parse_cut(at: &str) -> anyhow::Result<Cut> {
    if let Ok(seq) = at.parse::<u64>() {
        return Ok(Cut::Seq(seq));
    }
    OffsetDateTime::parse(at, &Rfc3339).map(Cut::Time).map_err(|_| {
        anyhow::anyhow!(
            "--at {at:?} is neither a stream sequence nor an RFC 3339 time like 2026-12-01T10:00:00Z"
        )
    })
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCmd::Export(a) => export(a).await,
        AuditCmd::Verify(a) => verify(a).await,
        AuditCmd::Replay(a) => replay(a).await,
        AuditCmd::History(a) => history(a).await,
        AuditCmd::Lookup(a) => lookup(a).await,
        AuditCmd::WasValid(a) => was_valid(a).await,
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    let mut count = 0u64;
    read(&args.source, args.since, "export", |m| {
        let line = ExportLine::new(m.seq, m.time, m.subject, &m.payload);
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        count += 1;
        Ok(())
    })
    .await?;
    out.flush()?;
    eprintln!("exported {count} messages");
    Ok(ExitCode::SUCCESS)
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let expected = args
        .expect_head
        .as_deref()
        .map(|h| {
            let (seq, hash) = h.split_once(':')?;
            Some((seq.parse::<u64>().ok()?, EventHash::from_hex(hash)?))
        })
        .map(|h| h.context("--expect-head takes SEQ:HASH, as verify prints the head"))
        .transpose()?;
    let started = Instant::now();
    let audit = walk(
        &args.source,
        Cut::End,
        false,
        expected.map(|e| e.0),
        "verify",
    )
    .await?;
    let Some(audit) = audit else {
        bail!("the history is empty: nothing to verify");
    };
    let mut summary = audit.summary();
    let head_check = expected.map(|(seq, hash)| {
        let problem = audit.check_head(seq, &hash);
        let matches = problem.is_none();
        summary.findings.extend(problem);
        summary.findings.sort_by_key(|f| f.seq);
        (format!("{seq}:{hash}"), matches)
    });
    let elapsed = started.elapsed();
    if args.format == Format::Json {
        let mut out = serde_json::to_value(&summary)?;
        if let Some((head, matches)) = &head_check {
            out["expected_head"] = serde_json::json!({ "head": head, "still_in_history": matches });
        }
        print_json(&out)?;
    } else {
        println!(
            "{} messages, {} events verified in {:.2} s ({:.0} messages/s)",
            summary.messages,
            summary.events,
            elapsed.as_secs_f64(),
            rate(summary.messages, elapsed)
        );
        for f in &summary.findings {
            println!("PROBLEM at sequence {}: {}", f.seq, f.problem);
        }
        println!("head {}", summary.head.as_deref().unwrap_or("(none)"));
        if let Some((head, true)) = &head_check {
            println!("expected head {head}: still in the history, unchanged");
        }
    }
    if let Some(first) = summary.findings.first() {
        eprintln!(
            "verification FAILED: first bad sequence {}: {}",
            first.seq, first.problem
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.format == Format::Text {
        println!("OK: the chain holds and every signature verifies");
    }
    Ok(ExitCode::SUCCESS)
}

fn key_line(k: &KeyAt) -> String {
    format!(
        "{}  {:<8}  {:<10} {:<8} {:<7} {:<5} {:?}{}",
        k.id,
        k.prefix.as_str(),
        if k.read_only {
            "read-only"
        } else {
            "read-write"
        },
        if k.enabled { "enabled" } else { "disabled" },
        if k.removed { "removed" } else { "-" },
        if k.admin { "admin" } else { "-" },
        k.name,
        k.untrusted
            .as_ref()
            .map(|u| format!("  UNTRUSTED: {u}"))
            .unwrap_or_default()
    )
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let cut = args.at.as_deref().map_or(Ok(Cut::End), parse_cut)?;
    let started = Instant::now();
    let Some(audit) = walk(&args.source, cut, false, None, "replay").await? else {
        bail!("the history is empty");
    };
    warn_past_end(&audit, cut);
    let keys: Vec<&KeyAt> = audit.keys().collect();
    if args.format == Format::Json {
        print_json(&keys)?;
    } else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        writeln!(
            out,
            "{:<36}  {:<8}  {:<10} {:<8} {:<7} {:<5} name",
            "id", "prefix", "scope", "state", "removed", "admin"
        )?;
        for k in &keys {
            writeln!(out, "{}", key_line(k))?;
        }
        out.flush()?;
        eprintln!(
            "{} keys as of sequence {} ({} messages read in {:.2} s)",
            keys.len(),
            audit.replayed_to(),
            audit.summary().messages,
            started.elapsed().as_secs_f64()
        );
    }
    report_untrusted(&audit);
    Ok(ExitCode::SUCCESS)
}

/// Says so when the point asked about lies past the end of the history.
fn warn_past_end(audit: &Audit, cut: Cut) {
    let end = audit.last_seq();
    if let Cut::Seq(seq) = cut
        && seq > end
    {
        eprintln!("warning: the history ends at sequence {end}; --at {seq} is past its end");
    }
}

/// Untrusted messages are listed, never dropped.
fn report_untrusted(audit: &Audit) {
    for f in audit.summary().findings {
        eprintln!("warning: sequence {}: {}", f.seq, f.problem);
    }
}

fn one_key<'a>(audit: &'a Audit, query: &str) -> anyhow::Result<&'a KeyAt> {
    match audit.find(query).as_slice() {
        [one] => Ok(one),
        [] if ApiKey::appears_in(query) => bail!(
            "that looks like a whole API key (not repeated here): give the key's id or prefix, \
             or pipe the key into `keyledger audit lookup`"
        ),
        [] => bail!("no key with id or prefix {query:?} in this history"),
        many => bail!(
            "{query:?} matches {} keys: {}; give the key id",
            many.len(),
            many.iter()
                .map(|k| k.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn print_history(key: &KeyAt, entries: &[HistoryEntry], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        return print_json(&serde_json::json!({ "key": key, "history": entries }));
    }
    println!(
        "key {} (prefix {}, {} {:?})",
        key.id,
        key.prefix.as_str(),
        if key.removed {
            "removed; last named"
        } else {
            "now"
        },
        key.name
    );
    for e in entries {
        let who = e.actor.as_ref().map_or_else(
            || "?".to_owned(),
            |a| match a {
                keyledger_events::Actor::Bootstrap => "bootstrap token".to_owned(),
                keyledger_events::Actor::AdminKey { key_id, prefix } => {
                    format!("admin key {} ({key_id})", prefix.as_str())
                }
            },
        );
        let from = e.origin.as_ref().map_or_else(String::new, |o| {
            format!(
                " from {}{}{}",
                o.ip.as_deref().unwrap_or("?"),
                o.user_agent
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default(),
                o.trace_id
                    .as_deref()
                    .map(|t| format!(" trace {t}"))
                    .unwrap_or_default()
            )
        });
        // Exactly as stored (to the nanosecond), so that a time copied from
        // here into `was-valid --at` or `replay --at` names this very event.
        let stored = e.stored_at.format(&Rfc3339).unwrap_or_default();
        println!(
            "  #{:<6} {stored}  {:<12} {}  by {who}{from}{}",
            e.seq,
            e.kind,
            e.change,
            e.request_id
                .as_ref()
                .map(|r| format!(" request {}", r.as_str()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let Some(audit) = walk(&args.source, Cut::End, true, None, "history").await? else {
        bail!("the history is empty");
    };
    let key = one_key(&audit, args.key.trim())?;
    print_history(key, audit.history(&key.id), args.format)?;
    Ok(ExitCode::SUCCESS)
}

async fn lookup(args: LookupArgs) -> anyhow::Result<ExitCode> {
    if !args.misplaced.is_empty() {
        bail!(
            "lookup reads the key from stdin, never from the command line, where it lands in shell \
             history and `ps` (the argument was not used and is not repeated here): \
             echo \"$KEY\" | keyledger audit lookup …"
        );
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("paste the key and press Enter (it is read from stdin, never from arguments):");
    }
    let mut raw = String::new();
    std::io::stdin()
        .read_line(&mut raw)
        .context("cannot read the key from stdin")?;
    let hash = KeyHash::of_presented(raw.trim())
        .map_err(|e| anyhow::anyhow!("that is not a keyledger key: {e}"))?;
    drop(raw);
    let Some(audit) = walk(&args.source, Cut::End, true, None, "lookup").await? else {
        bail!("the history is empty");
    };
    let Some(key) = audit.by_hash(&hash) else {
        if args.format == Format::Json {
            print_json(&serde_json::json!({ "found": false }))?;
        } else {
            println!("this key was never issued by this ledger");
        }
        return Ok(ExitCode::from(3));
    };
    print_history(key, audit.history(&key.id), args.format)?;
    Ok(ExitCode::SUCCESS)
}

async fn was_valid(args: WasValidArgs) -> anyhow::Result<ExitCode> {
    let cut = parse_cut(&args.at)?;
    // Resolve the key on the whole history (it may not exist yet at the cut).
    let Some(all) = walk(&args.source, Cut::End, false, None, "replay").await? else {
        bail!("the history is empty");
    };
    let id = one_key(&all, args.key.trim())?.id;
    let Some(then) = walk(&args.source, cut, false, None, "replay").await? else {
        bail!("the history is empty");
    };
    warn_past_end(&then, cut);
    let key = then.find(&id.to_string()).into_iter().next();
    let answer = validity(key, Access::for_method(&args.method));
    println!(
        "{}: key {id} {} valid for {} at {}: {}",
        if answer.valid { "yes" } else { "no" },
        if answer.valid { "was" } else { "was not" },
        args.method.to_uppercase(),
        args.at,
        answer.reason
    );
    Ok(if answer.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
