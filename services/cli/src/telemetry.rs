//! Logs and traces for the `keyledger` binary.
//!
//! ```text
//!   tracing spans/events ─┬─► fmt layer (stderr, text or JSON; RUST_LOG)
//!                         └─► OpenTelemetry layer (keyledger's spans, its own filter)
//!                               └─► batch processor (own thread) ─► OTLP/HTTP protobuf ─► collector
//! ```
//!
//! Traces are exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and not when
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Otherwise no
//! OpenTelemetry layer is installed at all, so tracing costs what it did
//! before. The standard variables configure the rest: `OTEL_SERVICE_NAME`
//! (default `keyledger-<command>`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` and `_ARG`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS`
//! and `_TIMEOUT`.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::LogFormat;

/// How long a flush on exit may take before spans still queued are dropped
/// (an unreachable collector must not hold up a shutdown).
const FLUSH_ON_EXIT: Duration = Duration::from_secs(3);

/// The installed logging and, when exporting, the trace pipeline.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber: logs to stderr in `format`, at
    /// `default_level` unless `RUST_LOG` says otherwise, and, for a
    /// `service`, traces to OTLP when the environment asks for it. `service`
    /// names this process when `OTEL_SERVICE_NAME` does not.
    pub(crate) fn init(
        format: LogFormat,
        default_level: &str,
        service: Option<&str>,
    ) -> anyhow::Result<Self> {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr);
        let fmt = match format {
            LogFormat::Text => fmt.boxed(),
            LogFormat::Json => fmt.json().boxed(),
        }
        .with_filter(filter);
        if service.is_some() {
            check_settings()?;
        }
        let provider = match service {
            Some(service) if exporting_requested() => Some(provider(service)?),
            _ => None,
        };
        let otel = provider.as_ref().map(|provider| {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            opentelemetry::global::set_tracer_provider(provider.clone());
            // Its own filter: RUST_LOG=warn must not silence the spans. The
            // node's per-request span stays out (sampled `verify` spans
            // stand for the hot path), and so do this binary's own spans,
            // which last as long as the process (`dev`'s "admin", "node").
            let spans = Targets::new()
                .with_target("keyledger", LevelFilter::INFO)
                .with_target("keyledger::", LevelFilter::OFF)
                .with_target(keyledger_node::REQUEST_TARGET, LevelFilter::OFF);
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("keyledger"))
                .with_filter(spans)
        });
        tracing_subscriber::registry().with(fmt).with(otel).init();
        Ok(Self { provider })
    }

    /// Whether traces are exported.
    pub(crate) fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued, for at most [`FLUSH_ON_EXIT`].
    pub(crate) fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_ON_EXIT)
        {
            eprintln!("keyledger: could not send the last traces: {e}");
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the standard variables ask for traces to be exported.
fn exporting_requested() -> bool {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let exporter = env("OTEL_TRACES_EXPORTER").unwrap_or_else(|| "otlp".into());
    if exporter.eq_ignore_ascii_case("none") {
        return false;
    }
    env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
}

/// Refuses OpenTelemetry settings keyledger would otherwise ignore without
/// a word (the SDK falls back silently), whether or not traces are exported.
fn check_settings() -> anyhow::Result<()> {
    if let Some(exporter) = env("OTEL_TRACES_EXPORTER") {
        anyhow::ensure!(
            ["otlp", "none"]
                .iter()
                .any(|e| exporter.eq_ignore_ascii_case(e)),
            "OTEL_TRACES_EXPORTER={exporter} is not supported: keyledger exports traces with OTLP (otlp) or not at all (none)"
        );
    }
    let samplers = [
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ];
    if let Some(sampler) = env("OTEL_TRACES_SAMPLER") {
        anyhow::ensure!(
            samplers.contains(&sampler.as_str()),
            "OTEL_TRACES_SAMPLER={sampler} is not one of {}",
            samplers.join(", ")
        );
        if sampler.ends_with("traceidratio")
            && let Some(arg) = env("OTEL_TRACES_SAMPLER_ARG")
        {
            anyhow::ensure!(
                arg.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r)),
                "OTEL_TRACES_SAMPLER_ARG={arg} is not a ratio from 0 to 1"
            );
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
        if let Some(ms) = env(var) {
            anyhow::ensure!(
                ms.parse::<u64>().is_ok(),
                "{var}={ms} is not a number of milliseconds"
            );
        }
    }
    Ok(())
}

fn provider(service: &str) -> anyhow::Result<SdkTracerProvider> {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = env(var) {
            anyhow::ensure!(
                protocol == "http/protobuf",
                "{var}={protocol} is not supported: keyledger exports OTLP over HTTP (http/protobuf); \
                 point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (usually 4318)"
            );
        }
    }
    let timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|var| env(var)?.parse::<u64>().ok())
    .map_or(Duration::from_secs(10), Duration::from_millis);
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .context("cannot make the OTLP exporter's HTTP client")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(OtlpClient(client))
        .build()
        .context(
            "cannot set up the OTLP trace exporter (see the OTEL_EXPORTER_OTLP_* variables)",
        )?;
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if !named {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The OTLP exporter's HTTP client: reqwest's blocking client (the same
/// reqwest and TLS stack as the rest of the binary). The batch processor
/// calls it from its own thread, never from the async runtime.
#[derive(Debug)]
struct OtlpClient(reqwest::blocking::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::blocking::Request::try_from(request)?;
        let response = self.0.execute(request)?;
        let mut answer = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        Ok(answer.body(response.bytes()?)?)
    }
}
