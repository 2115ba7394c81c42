//! Events a node cannot decode or trust: never skipped, always fail closed.

use std::time::Duration;

use keyledger_tests::{System, applied_seq, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn publish_raw(sys: &System, subject: &str, payload: &str) -> u64 {
    let client = async_nats::connect(sys.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(subject.to_owned(), payload.to_owned().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

async fn status(sys: &System, i: usize) -> Value {
    sys.http
        .get(format!("{}/v1/status", sys.nodes[i].url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_makes_its_key_fail_closed() {
    let sys = System::start().await.unwrap();
    let victim = sys.create_key("victim", false).await;
    let bystander = sys.create_key("bystander", false).await;
    sys.wait_applied(bystander.seq).await;

    // An event type from the future, addressed to the victim.
    let future = json!({ "events": [{ "v": 1, "type": "Transferred", "id": "0193a0b1-0000-7000-8000-000000000009",
        "key_id": victim.id, "at": "2026-12-01T10:00:00Z", "actor": { "type": "bootstrap" }, "request_id": "x", "data": {} }] });
    let seq = publish_raw(
        &sys,
        &format!("KEYLEDGER.keys.{}", victim.id),
        &future.to_string(),
    )
    .await;
    sys.wait_applied(seq).await;

    for i in 0..2 {
        let r = sys
            .http
            .get(format!("{}/v1/verify", sys.nodes[i].url))
            .bearer_auth(&victim.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "key_state_unknown");
        let s = status(&sys, i).await;
        assert_eq!(s["poisoned_keys"][0]["key_id"], victim.id.as_str(), "{s}");
        assert_eq!(s["poisoned_keys"][0]["seq"], seq);
        assert!(
            s["poisoned_keys"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("Transferred")
        );
        // The node stays up and keeps serving the other keys.
        assert_eq!(sys.verify(i, &bystander.key, "POST").await, StatusCode::OK);
    }
    // Later events do not bring the key back.
    let (status_code, body) = sys.update_key(&victim.id, json!({ "enabled": true })).await;
    assert_eq!(status_code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "key_state_unknown");
    // New keys still work.
    let fresh = sys.create_key("fresh", false).await;
    sys.wait_applied(fresh.seq).await;
    assert_eq!(
        sys.verify_all(&fresh.key, "GET").await,
        [StatusCode::OK, StatusCode::OK]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_the_wrong_subject_poisons_both_keys() {
    let sys = System::with_nodes(1).await.unwrap();
    let a = sys.create_key("a", false).await;
    let b = sys.create_key("b", false).await;
    sys.wait_applied(b.seq).await;
    // A valid-looking Disabled for `a`, stored under `b`'s subject.
    let wrong = json!({ "events": [{ "v": 1, "type": "Disabled", "id": "0193a0b1-0000-7000-8000-000000000009",
        "key_id": a.id, "at": "2026-12-01T10:00:00Z", "actor": { "type": "bootstrap" }, "request_id": "x", "data": {} }] });
    let seq = publish_raw(
        &sys,
        &format!("KEYLEDGER.keys.{}", b.id),
        &wrong.to_string(),
    )
    .await;
    sys.wait_applied(seq).await;
    assert_eq!(sys.verify(0, &a.key, "GET").await, StatusCode::UNAUTHORIZED);
    assert_eq!(sys.verify(0, &b.key, "GET").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&sys, 0).await["poisoned_keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_that_names_no_key_seals_the_node() {
    let sys = System::with_nodes(1).await.unwrap();
    let key = sys.create_key("k", false).await;
    sys.wait_applied(key.seq).await;
    let seq = publish_raw(&sys, "KEYLEDGER.keys.not-a-key-id", "\u{0}garbage").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            applied_seq(&sys.http, &sys.nodes[0].url).await >= seq
        })
        .await
    );
    assert_eq!(
        sys.verify(0, &key.key, "GET").await,
        StatusCode::UNAUTHORIZED
    );
    let r = sys
        .http
        .get(format!("{}/readyz", sys.nodes[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["sealed"]["seq"], seq);
    // Health is separate from readiness: the process is alive.
    let r = sys
        .http
        .get(format!("{}/healthz", sys.nodes[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_acknowledge_a_garbage_message_after_inspecting_it() {
    let sys = System::with_nodes(0).await.unwrap();
    let key = sys.create_key("k", false).await;
    let later = sys.create_key("later", false).await;
    let seq = publish_raw(&sys, "KEYLEDGER.keys.not-a-key-id", "garbage").await;
    // A node told that `seq` is known garbage passes over it and serves normally.
    let options = keyledger_eventlog::FeedOptions {
        acknowledged: [seq].into_iter().collect(),
    };
    let node = keyledger_tests::RunningNode::start_with(&sys.nats.url(), &sys.stream, options)
        .await
        .unwrap();
    let ready = keyledger_tests::becomes_ready(&sys.http, &node.url, Duration::from_secs(10)).await;
    assert!(ready);
    assert_eq!(
        keyledger_tests::verify_at(&sys.http, &node.url, &key.key, "GET").await,
        StatusCode::OK
    );
    assert_eq!(
        keyledger_tests::verify_at(&sys.http, &node.url, &later.key, "GET").await,
        StatusCode::OK
    );
    // A node without the acknowledgement fails closed.
    let plain = keyledger_tests::RunningNode::start(&sys.nats.url(), &sys.stream)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            applied_seq(&sys.http, &plain.url).await >= seq
        })
        .await
    );
    assert_eq!(
        keyledger_tests::verify_at(&sys.http, &plain.url, &key.key, "GET").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_stream_seals_every_node_and_admin() {
    let sys = System::with_nodes(1).await.unwrap();
    let key = sys.create_key("before", false).await;
    sys.wait_applied(key.seq).await;
    // Someone deletes the stream and makes it again (or restores an old backup).
    let client = async_nats::connect(sys.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream("KEYLEDGER").await.unwrap();
    let log = keyledger_eventlog::EventLog::connect(&sys.nats.url(), "KEYLEDGER")
        .await
        .unwrap();
    log.ensure_stream(&keyledger_eventlog::StreamOptions::default())
        .await
        .unwrap();
    let sealed = eventually(Duration::from_secs(10), || async {
        status(&sys, 0).await["sealed"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replaced"))
    })
    .await;
    assert!(sealed, "{}", status(&sys, 0).await);
    assert_eq!(
        sys.verify(0, &key.key, "GET").await,
        StatusCode::UNAUTHORIZED
    );
    let r = sys
        .http
        .get(format!("{}/readyz", sys.nodes[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The admin refuses to build on a history it no longer has.
    let sealed_admin = eventually(Duration::from_secs(10), || async {
        sys.http
            .get(format!("{}/readyz", sys.admin.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(sealed_admin);
    let (code, body) = sys.update_key(&key.id, json!({ "enabled": false })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
}
