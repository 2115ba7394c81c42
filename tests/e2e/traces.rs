//! OpenTelemetry end to end: admin and two nodes as real processes export
//! OTLP/HTTP to a receiver started here; a disable yields one trace holding
//! the admin request, the append and an apply on each node. Logs carry
//! request ids, and no span or log line carries a key or its hash.

use std::path::Path;
use std::time::Duration;

use keyledger_events::KeyHash;
use keyledger_tests::{
    NatsServer, OtlpReceiver, Process, ReceivedSpan, becomes_ready, bootstrap_admin_key,
    eventually, free_port, verify_at,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BOOTSTRAP: &str = "trace-bootstrap-token-0123456789";

struct Traced {
    admin: Process,
    nodes: Vec<Process>,
    admin_url: String,
    node_urls: Vec<String>,
}

/// Admin (service `test-admin`) and two nodes (`test-node-1`, `test-node-2`)
/// exporting to `otlp`, logging JSON.
fn start(dir: &Path, nats: &NatsServer, otlp: &OtlpReceiver) -> Traced {
    let key_file = dir.join("signing.key");
    let mut keygen = Process::spawn(
        "keygen",
        dir,
        &["keygen", "--out", key_file.to_str().unwrap()],
        &[],
    )
    .unwrap();
    assert!(keygen.wait(Duration::from_secs(10)).unwrap().success());
    let public = dir.join("signing.key.pub");
    let nats_url = nats.url();
    let otel = |service: &'static str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
            ("OTEL_SERVICE_NAME", service.to_owned()),
            // Export quickly, so the test need not wait 5 s per batch.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("KEYLEDGER_NATS_URL", nats_url.clone()),
            ("KEYLEDGER_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info,keyledger_node=debug".to_owned()),
        ]
    };
    let as_refs =
        |envs: &[(&'static str, String)]| -> Vec<(&'static str, String)> { envs.to_vec() };
    let admin_listen = format!("127.0.0.1:{}", free_port());
    let mut admin_env = as_refs(&otel("test-admin"));
    admin_env.push(("KEYLEDGER_ADMIN_TOKEN", BOOTSTRAP.to_owned()));
    let admin = spawn(
        "admin",
        dir,
        &[
            "admin",
            "--signing-key-file",
            key_file.to_str().unwrap(),
            "--listen",
            &admin_listen,
        ],
        &admin_env,
    );
    let mut nodes = Vec::new();
    let mut node_urls = Vec::new();
    for (n, service) in [(1, "test-node-1"), (2, "test-node-2")] {
        let listen = format!("127.0.0.1:{}", free_port());
        // Node 1 traces every verification; node 2 the default share.
        let mut args = vec![
            "node",
            "--public-key",
            public.to_str().unwrap(),
            "--listen",
            &listen,
        ];
        if n == 1 {
            args.extend(["--verify-trace-ratio", "1"]);
        }
        nodes.push(spawn(&format!("node-{n}"), dir, &args, &otel(service)));
        node_urls.push(format!("http://{listen}"));
    }
    Traced {
        admin,
        nodes,
        admin_url: format!("http://{admin_listen}"),
        node_urls,
    }
}

fn spawn(name: &str, dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Process {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Process::spawn(name, dir, args, &envs).unwrap()
}

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

/// The spans of `trace_id` once it holds the request, the append and both
/// nodes' applies (at most 15 s).
async fn whole_trace(otlp: &OtlpReceiver, trace_id: &str) -> Vec<ReceivedSpan> {
    let complete = |spans: &[ReceivedSpan]| {
        let trace = in_trace(spans, trace_id);
        let has = |service: &str, name: &str| {
            trace.iter().any(|s| s.service == service && s.name == name)
        };
        has("test-admin", "append")
            && has("test-admin", "PATCH /v1/keys/{id}")
            && has("test-node-1", "apply")
            && has("test-node-2", "apply")
    };
    eventually(Duration::from_secs(15), || async {
        complete(&otlp.spans())
    })
    .await;
    otlp.spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect()
}

fn one<'a>(trace: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = trace
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} span from {service} in the trace: {trace:#?}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_is_one_trace_from_the_admin_request_to_both_nodes() {
    let nats = NatsServer::start().unwrap();
    let otlp = OtlpReceiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sys = start(dir.path(), &nats, &otlp);
    let http = reqwest::Client::new();
    for url in std::iter::once(&sys.admin_url).chain(&sys.node_urls) {
        assert!(
            becomes_ready(&http, url, Duration::from_secs(20)).await,
            "{url}: {}",
            sys.admin.output()
        );
    }
    let admin_key = bootstrap_admin_key(&http, &sys.admin_url, BOOTSTRAP)
        .await
        .unwrap();
    let created: Value = http
        .post(format!("{}/v1/keys", sys.admin_url))
        .bearer_auth(&admin_key)
        .json(&json!({ "name": "traced", "read_only": false }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key, id) = (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    );
    for url in &sys.node_urls {
        assert!(
            eventually(Duration::from_secs(10), || async {
                verify_at(&http, url, &key, "POST").await == StatusCode::OK
            })
            .await
        );
    }

    // The disable. The trace id is the one the event records.
    let r = http
        .patch(format!("{}/v1/keys/{id}", sys.admin_url))
        .bearer_auth(&admin_key)
        .header("x-request-id", "disable-under-trace")
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let history: Value = http
        .get(format!("{}/v1/keys/{id}/history", sys.admin_url))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let disabled = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "Disabled")
        .unwrap_or_else(|| panic!("no Disabled event: {history}"));
    let trace_id = disabled["origin"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the event records its trace: {disabled}"))
        .to_owned();
    assert_eq!(trace_id.len(), 32);

    let trace = whole_trace(&otlp, &trace_id).await;
    let request = one(&trace, "test-admin", "PATCH /v1/keys/{id}");
    let decide = one(&trace, "test-admin", "decide");
    let append = one(&trace, "test-admin", "append");
    let applies = [
        one(&trace, "test-node-1", "apply"),
        one(&trace, "test-node-2", "apply"),
    ];
    assert_eq!(
        request.parent_span_id, "",
        "a request without traceparent starts the trace"
    );
    assert_eq!(request.attributes["request_id"], "disable-under-trace");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    assert_eq!(decide.parent_span_id, request.span_id);
    assert_eq!(append.parent_span_id, request.span_id);
    assert_eq!(append.attributes["key_id"], id);
    let seq = append.attributes["seq"].clone();
    assert_eq!(seq, r_seq(&history, "Disabled"));
    for apply in applies {
        assert_eq!(
            apply.parent_span_id, append.span_id,
            "each node's apply is a child of the append, across NATS"
        );
        assert_eq!(apply.attributes["seq"], seq);
        assert_eq!(apply.attributes["key_id"], id);
    }

    // A caller's own trace is joined, not replaced.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = http
        .patch(format!("{}/v1/keys/{id}", sys.admin_url))
        .bearer_auth(&admin_key)
        .header(
            "traceparent",
            format!("00-{caller_trace}-00f067aa0ba902b7-01"),
        )
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let joined = whole_trace(&otlp, caller_trace).await;
    assert_eq!(
        one(&joined, "test-admin", "PATCH /v1/keys/{id}").parent_span_id,
        "00f067aa0ba902b7"
    );

    // Verifications: node 1 traces each one; the span names the key by id
    // and prefix. A proxy's sampled traceparent is followed on node 2 too.
    assert_eq!(
        verify_at(&http, &sys.node_urls[0], &key, "GET").await,
        StatusCode::OK
    );
    let proxy_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = http
        .get(format!("{}/v1/verify", sys.node_urls[1]))
        .header("x-api-key", &key)
        .header(
            "traceparent",
            format!("00-{proxy_trace}-b7ad6b7169203331-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let verified = eventually(Duration::from_secs(10), || async {
        let spans = otlp.spans();
        spans.iter().any(|s| {
            s.service == "test-node-1"
                && s.name == "verify"
                && s.attributes.get("key_id") == Some(&id)
        }) && spans
            .iter()
            .any(|s| s.service == "test-node-2" && s.name == "verify" && s.trace_id == proxy_trace)
    })
    .await;
    assert!(verified, "verify spans: {:#?}", otlp.spans());
    let spans = otlp.spans();
    let verify = spans
        .iter()
        .find(|s| {
            s.service == "test-node-1"
                && s.name == "verify"
                && s.attributes.get("key_id") == Some(&id)
        })
        .unwrap();
    assert_eq!(verify.attributes["prefix"], key[..8]);
    assert_eq!(verify.attributes["outcome"], "ok");

    // A denial is logged (at debug) inside the node's request span.
    assert_eq!(
        verify_at(&http, &sys.node_urls[0], "not-a-key", "GET").await,
        StatusCode::UNAUTHORIZED
    );

    // Logs: JSON, and every line a request caused names its request id.
    sys.admin.terminate().unwrap();
    for node in &mut sys.nodes {
        node.terminate().unwrap();
    }
    let admin_log = sys.admin.output();
    let answered: Vec<Value> = admin_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "answered")
        .collect();
    assert!(answered.len() >= 4, "{admin_log}");
    for line in &answered {
        assert!(
            line["span"]["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "a request's log line names its request id: {line}"
        );
    }
    assert!(
        answered
            .iter()
            .any(|l| l["span"]["request_id"] == "disable-under-trace")
    );
    let node_log = sys.nodes[0].output();
    let denied: Vec<Value> = node_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "key denied")
        .collect();
    assert!(!denied.is_empty(), "{node_log}");
    for line in &denied {
        assert!(
            line["span"]["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("node-")),
            "a node's request log line names its request id: {line}"
        );
    }

    // No key, and no key's hash, anywhere in the spans or the logs.
    let hash = KeyHash::of_presented(&key).unwrap().to_hex();
    let everything = format!(
        "{:?}{admin_log}{node_log}{}",
        otlp.spans(),
        sys.nodes[1].output()
    );
    for secret in [&key, &admin_key, &hash] {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret leaked into spans or logs"
        );
    }
}

/// The `seq` of the first `kind` event in a history answer.
fn r_seq(history: &Value, kind: &str) -> String {
    history["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == kind)
        .map(|e| e["seq"].to_string())
        .unwrap()
}

#[test]
fn open_telemetry_settings_keyledger_cannot_honour_are_start_up_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![("OTEL_TRACES_EXPORTER", "bogus")],
            "OTEL_TRACES_EXPORTER",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "http/protobuf",
        ),
        (
            vec![("OTEL_TRACES_SAMPLER", "sometimes")],
            "OTEL_TRACES_SAMPLER",
        ),
        (
            vec![
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "abc"),
            ],
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
    ];
    for (envs, named) in cases {
        let mut p = Process::spawn(
            "otel",
            dir.path(),
            &["node", "--nats-url", "nats://127.0.0.1:1"],
            &envs,
        )
        .unwrap();
        let status = p.wait(Duration::from_secs(10)).unwrap();
        assert!(!status.success(), "{envs:?}");
        assert!(p.output().contains(named), "{envs:?}: {}", p.output());
    }
}
