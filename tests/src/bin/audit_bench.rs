//! How long `keyledger audit verify` and `replay` take on a long history.
//!
//! Generates N signed events (a realistic mix: every key is created, then
//! renamed, disabled, enabled and finally some are removed) as an export file,
//! then runs the real `keyledger audit verify --from` and `replay --from` on
//! it, several times. Baseline, measured in the same run: reading and parsing
//! the same file as plain JSON lines, which any replay must do.
//!
//! Usage: `audit-bench [EVENTS] [RUNS]` (default 1000000 and 3). Build with
//! `--release` (both this and `keyledger`).

use std::io::{BufRead, BufWriter, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keyledger_events::{
    Actor, ApiKey, Chain, Change, Commit, Event, EventId, KeyId, KeyName, Origin, RequestId,
    SigningKey,
};
use time::OffsetDateTime;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("history.jsonl");
    let public = dir.path().join("signing.key.pub");
    let started = Instant::now();
    let (messages, signing) = generate(&file, events)?;
    std::fs::write(&public, format!("{}\n", signing.public_key()))?;
    println!(
        "audit bench: {events} events in {messages} messages generated in {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&file)?.len() / 1_000_000
    );
    let bin = keyledger_tests::keyledger_bin()?;
    let (from, key) = (
        file.to_str().context("path")?,
        public.to_str().context("path")?,
    );
    let mut parse = Vec::new();
    let mut verify = Vec::new();
    let mut replay = Vec::new();
    for run in 1..=runs {
        parse.push(timed(|| parse_only(&file))?);
        verify.push(timed(|| {
            audit(&bin, &["verify", "--from", from, "--public-key", key])
        })?);
        replay.push(timed(|| {
            audit(
                &bin,
                &[
                    "replay",
                    "--from",
                    from,
                    "--public-key",
                    key,
                    "--format",
                    "json",
                ],
            )
        })?);
        println!(
            "run {run}: parse {:.2} s, verify {:.2} s, replay {:.2} s",
            parse[run - 1].as_secs_f64(),
            verify[run - 1].as_secs_f64(),
            replay[run - 1].as_secs_f64()
        );
    }
    let (p, v, r) = (median(&mut parse), median(&mut verify), median(&mut replay));
    println!("medians of {runs} runs over {events} events:");
    println!(
        "  baseline (read + parse JSON lines): {:.2} s",
        p.as_secs_f64()
    );
    println!(
        "  verify: {:.2} s ({:.0} events/s, {:.1}x baseline)",
        v.as_secs_f64(),
        per_second(events, v),
        v.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "  replay: {:.2} s ({:.0} events/s, {:.1}x baseline)",
        r.as_secs_f64(),
        per_second(events, r),
        r.as_secs_f64() / p.as_secs_f64()
    );
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn per_second(events: u64, d: Duration) -> f64 {
    events as f64 / d.as_secs_f64()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}

fn audit(bin: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin).arg("audit").args(args).output()?;
    if !out.status.success() {
        bail!(
            "keyledger audit {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn parse_only(file: &std::path::Path) -> anyhow::Result<()> {
    let mut lines = 0u64;
    for line in std::io::BufReader::new(std::fs::File::open(file)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        lines += u64::from(v.is_object());
    }
    anyhow::ensure!(lines > 0, "empty file");
    Ok(())
}

/// Writes a signed history of `events` events; returns the message count and the key.
fn generate(file: &std::path::Path, events: u64) -> anyhow::Result<(u64, SigningKey)> {
    let signing = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chain = Chain::new(signing.public_key());
    let mut out = BufWriter::new(std::fs::File::create(file)?);
    let admin = KeyId::from_parts(1, [0xad; 10]);
    let actor = Actor::AdminKey {
        key_id: admin,
        prefix: ApiKey::generate()?.prefix(),
    };
    let origin = Origin::new(Some("10.0.0.1".into()), Some("bench/1"), None);
    let request_id: RequestId = "bench".parse()?;
    let base = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let (mut seq, mut written, mut n) = (0u64, 0u64, 0u64);
    while written < events {
        n += 1;
        let key = ApiKey::generate()?;
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&n.to_be_bytes());
        let key_id = KeyId::from_parts(1, random);
        let lifetime = [
            vec![Change::Created {
                name: KeyName::parse(&format!("key {n}"))?,
                prefix: key.prefix(),
                hash: key.hash(),
                read_only: n % 2 == 0,
                admin: false,
            }],
            vec![Change::Renamed {
                name: KeyName::parse(&format!("renamed {n}"))?,
            }],
            vec![Change::Disabled],
            vec![Change::Enabled],
            if n % 5 == 0 {
                vec![Change::Removed]
            } else {
                vec![Change::ScopeChanged {
                    read_only: n % 2 != 0,
                }]
            },
        ];
        for changes in lifetime {
            if written >= events {
                break;
            }
            seq += 1;
            let at = base + time::Duration::milliseconds(i64::try_from(seq)?);
            let commit = Commit::new(
                changes
                    .into_iter()
                    .map(|change| Event {
                        event_id: EventId::from_parts(seq, random),
                        key_id,
                        at,
                        actor: actor.clone(),
                        request_id: request_id.clone(),
                        origin: origin.clone(),
                        change,
                    })
                    .collect(),
            )?;
            let signed = chain.sign(&commit, &signing, None)?;
            chain.accept(seq, &signed);
            written += commit.events().len() as u64;
            let payload: serde_json::Value = serde_json::from_slice(&signed.bytes)?;
            let line = serde_json::json!({
                "seq": seq,
                "time": at.format(&time::format_description::well_known::Rfc3339)?,
                "subject": format!("KEYLEDGER.keys.{key_id}"),
                "payload": payload,
            });
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok((seq, signing))
}
