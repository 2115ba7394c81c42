//! What exporting traces costs `/v1/verify`: the throughput of a real
//! `keyledger node` process with OpenTelemetry off (baseline, same run),
//! on at the default sampling (one verification in a hundred gets a span),
//! and on with every verification traced (the ceiling), exporting OTLP/HTTP
//! to a real receiver.
//!
//! Each round starts a fresh node per mode, in rotating order, warms it
//! up, then drives it with keep-alive HTTP clients for a fixed time. It
//! reports throughput and the node's CPU time per verification (from
//! /proc), which the shared machine's noise moves less.
//!
//! Usage: `verify-trace-bench [ROUNDS] [SECONDS] [CLIENTS]` (default 9 2 8).
//! Build with `cargo build --release -p keyledger-cli -p keyledger-tests --bins`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use keyledger_tests::{OtlpReceiver, Process, System, becomes_ready, free_port};
use reqwest::StatusCode;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Off,
    Sampled,
    Every,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "tracing off",
            Mode::Sampled => "on, default 0.01",
            Mode::Every => "on, every request",
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let rounds = usize::try_from(args.next().transpose()?.unwrap_or(9))?;
    let seconds = args.next().transpose()?.unwrap_or(2);
    let clients = args.next().transpose()?.unwrap_or(8);
    let sys = System::with_nodes(0).await?;
    let key = sys.create_key("bench", true).await.key;
    let otlp = OtlpReceiver::start().await?;
    let dir = tempfile::tempdir()?;
    let public = dir.path().join("signing.key.pub");
    std::fs::write(&public, sys.signing.public_key().to_string())?;
    println!(
        "verify-trace bench: {rounds} rounds x {seconds} s per mode, {clients} keep-alive clients, \
         node process (release), OTLP/HTTP to a receiver in this process"
    );
    let modes = [Mode::Off, Mode::Sampled, Mode::Every];
    // Per mode, per round: (verifications/s, node CPU µs per verification).
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        let mut line = format!("round {}:", round + 1);
        // Rotate the order, so that no mode always runs first or last.
        for k in 0..modes.len() {
            let i = (k + round) % modes.len();
            let m = run(
                &sys,
                &otlp,
                &public,
                dir.path(),
                modes[i],
                &key,
                seconds,
                clients,
            )
            .await?;
            results[i].push(m);
        }
        for (i, mode) in modes.iter().enumerate() {
            let m = results[i][round];
            let _ = write!(
                line,
                "  {}: {:.0}/s {:.1} µs CPU",
                mode.name(),
                m.rate,
                m.cpu_us
            );
        }
        println!("{line}");
    }
    println!(
        "medians of {rounds} rounds (ratios are paired: each round against its own tracing-off run):"
    );
    for (i, mode) in modes.iter().enumerate() {
        let rate = median(results[i].iter().map(|m| m.rate));
        let cpu = median(results[i].iter().map(|m| m.cpu_us));
        let rate_ratio = median(
            results[i]
                .iter()
                .zip(&results[0])
                .map(|(m, off)| m.rate / off.rate),
        );
        let cpu_ratio = median(
            results[i]
                .iter()
                .zip(&results[0])
                .map(|(m, off)| m.cpu_us / off.cpu_us),
        );
        println!(
            "  {:<20} {rate:>8.0} verifications/s ({rate_ratio:.3}x)   node CPU {cpu:.1} µs per verification ({cpu_ratio:.3}x)",
            mode.name(),
        );
    }
    let spans = otlp.spans();
    let verify_spans = spans.iter().filter(|s| s.name == "verify").count();
    println!(
        "receiver got {} spans, {verify_spans} of them verify spans",
        spans.len()
    );
    if verify_spans == 0 {
        bail!("no verify span reached the receiver: tracing was not on");
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Measured {
    rate: f64,
    cpu_us: f64,
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[allow(clippy::too_many_arguments)]
async fn run(
    sys: &System,
    otlp: &OtlpReceiver,
    public: &std::path::Path,
    dir: &std::path::Path,
    mode: Mode,
    key: &str,
    seconds: u64,
    clients: u64,
) -> anyhow::Result<Measured> {
    let listen = format!("127.0.0.1:{}", free_port());
    let nats = sys.nats.url();
    let mut envs = vec![
        ("KEYLEDGER_NATS_URL", nats.as_str()),
        ("KEYLEDGER_LISTEN", listen.as_str()),
        ("RUST_LOG", "warn"),
    ];
    if mode != Mode::Off {
        envs.push(("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.as_str()));
        envs.push(("OTEL_SERVICE_NAME", "bench-node"));
    }
    if mode == Mode::Every {
        envs.push(("KEYLEDGER_VERIFY_TRACE_RATIO", "1"));
    }
    let mut node = Process::spawn(
        "node",
        dir,
        &["node", "--public-key", public.to_str().context("path")?],
        &envs,
    )?;
    let url = format!("http://{listen}/v1/verify");
    if !becomes_ready(
        &sys.http,
        &format!("http://{listen}"),
        Duration::from_secs(20),
    )
    .await
    {
        bail!("node did not become ready: {}", node.output());
    }
    // Warm up, then measure.
    load(&url, key, Duration::from_millis(500), clients).await?;
    let cpu_before = node.cpu_time()?;
    let done = load(&url, key, Duration::from_secs(seconds), clients).await?;
    let cpu = node.cpu_time()?.saturating_sub(cpu_before);
    node.terminate()?;
    #[allow(clippy::cast_precision_loss)]
    Ok(Measured {
        rate: done as f64 / seconds as f64,
        cpu_us: cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
    })
}

/// Verifications answered 200 by `clients` concurrent keep-alive clients in `time`.
async fn load(url: &str, key: &str, time: Duration, clients: u64) -> anyhow::Result<u64> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (count, stop) = (count.clone(), stop.clone());
        let (url, key) = (url.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let r = http.get(&url).header("x-api-key", &key).send().await?;
                if r.status() != StatusCode::OK {
                    bail!("verify answered {}", r.status());
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(n)
}
