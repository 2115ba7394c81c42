//! A node cut off from NATS must not go on accepting keys that were revoked
//! while it could not hear: after its staleness bound it fails closed.

use std::time::{Duration, Instant};

use keyledger_eventlog::{EventLog, FeedOptions};
use keyledger_node::Node;
use keyledger_tests::{RunningNode, System, TcpProxy, applied_seq, eventually, verify_at};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_fails_closed_then_recovers() {
    let sys = System::with_nodes(0).await.unwrap();
    let target = sys.nats.url().trim_start_matches("nats://").to_owned();
    let proxy = TcpProxy::start(target).await.unwrap();
    let log = EventLog::connect(&proxy.nats_url(), &sys.stream)
        .await
        .unwrap();
    let max_staleness = Duration::from_millis(800);
    let node = RunningNode::serve(Node::start_with_max_staleness(
        log,
        FeedOptions::new(sys.signing.public_key()),
        max_staleness,
    ))
    .await
    .unwrap();
    let revoked = sys.create_key("revoked while cut off", false).await;
    let live = sys.create_key("still live", false).await;
    let http = &sys.http;
    assert!(
        eventually(Duration::from_secs(10), || async {
            verify_at(http, &node.url, &live.key, "GET").await == StatusCode::OK
        })
        .await
    );
    // Well within the bound, a healthy node stays fresh.
    tokio::time::sleep(max_staleness * 2).await;
    assert_eq!(
        verify_at(http, &node.url, &revoked.key, "GET").await,
        StatusCode::OK
    );

    proxy.cut();
    let cut_at = Instant::now();
    let (status, disabled) = sys
        .update_key(&revoked.id, json!({ "enabled": false }))
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    // The node cannot hear the revocation; within its bound (plus a probe)
    // it stops answering from memory: every key fails closed with 503.
    let failed_closed = eventually(Duration::from_secs(5), || async {
        verify_at(http, &node.url, &revoked.key, "GET").await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let took = cut_at.elapsed();
    assert!(failed_closed, "the cut-off node kept answering");
    assert!(
        took < max_staleness + Duration::from_secs(2),
        "failed closed only after {took:?}"
    );
    assert_eq!(
        verify_at(http, &node.url, &live.key, "GET").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = http
        .get(format!("{}/v1/verify", node.url))
        .bearer_auth(&live.key)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "stale", "{body}");
    let ready = http
        .get(format!("{}/readyz", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let status: Value = ready.json().await.unwrap();
    assert_eq!(status["stale"], json!(true), "{status}");

    // Back on the network: it catches up, then answers again, revocation included.
    proxy.restore();
    let recovered = eventually(Duration::from_secs(30), || async {
        verify_at(http, &node.url, &revoked.key, "GET").await == StatusCode::UNAUTHORIZED
            && verify_at(http, &node.url, &live.key, "GET").await == StatusCode::OK
    })
    .await;
    assert!(
        recovered,
        "the node did not recover after the partition healed"
    );
    assert!(applied_seq(http, &node.url).await >= disabled["seq"].as_u64().unwrap());
    let ready = http
        .get(format!("{}/readyz", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
