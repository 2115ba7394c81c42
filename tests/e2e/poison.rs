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

    // An event type from the future, addressed to the victim, properly
    // linked and signed (as a newer admin would write it).
    let future = sys
        .sign_raw(vec![json!({ "v": 3, "type": "Transferred", "id": "0193a0b1-0000-7000-8000-000000000009",
        "key_id": victim.id, "at": "2026-12-01T10:00:00Z", "actor": { "type": "bootstrap" }, "request_id": "x", "data": {} })])
        .await;
    let seq = publish_raw(&sys, &format!("KEYLEDGER.keys.{}", victim.id), &future).await;
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
        // A trusted message it cannot read: the chain goes on, no alarm.
        assert_eq!(s["chain"]["untrusted_messages"], 0, "{s}");
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
    // Admins see the garbage as the export shows it: its bytes, in hex.
    let (code, page) = sys
        .admin_call(
            reqwest::Method::GET,
            &format!("/v1/events?since={seq}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{page}");
    let line = &page["events"][0];
    assert_eq!(line["seq"], seq, "{page}");
    assert_eq!(line["payload_hex"], "0067617262616765", "{page}");
    assert!(line["untrusted"].is_string(), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_acknowledge_a_garbage_message_after_inspecting_it() {
    let sys = System::with_nodes(0).await.unwrap();
    let key = sys.create_key("k", false).await;
    let later = sys.create_key("later", false).await;
    let seq = publish_raw(&sys, "KEYLEDGER.keys.not-a-key-id", "garbage").await;
    // A node told that `seq` is known garbage passes over it and serves normally.
    let options = keyledger_eventlog::FeedOptions {
        trust: sys.signing.public_key(),
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
    let plain = sys.start_node(&sys.stream).await.unwrap();
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
    // It says so plainly: sealed, nothing changed (503), not a conflict on one key.
    let (code, body) = sys.update_key(&key.id, json!({ "enabled": false })).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "sealed", "{body}");
    let (code, body) = sys
        .admin_call(
            reqwest::Method::POST,
            "/v1/keys",
            Some(json!({ "name": "brand new" })),
        )
        .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "sealed", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_seals_every_node_and_admin() {
    let sys = System::with_nodes(1).await.unwrap();
    let key = sys.create_key("before", false).await;
    sys.wait_applied(key.seq).await;
    // Someone deletes the stream, and nobody makes it again: the revocations
    // are gone, so the node must not go on serving what it remembers.
    let client = async_nats::connect(sys.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream("KEYLEDGER").await.unwrap();
    let sealed = eventually(Duration::from_secs(10), || async {
        status(&sys, 0).await["sealed"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("deleted"))
    })
    .await;
    assert!(sealed, "{}", status(&sys, 0).await);
    assert_eq!(
        sys.verify(0, &key.key, "GET").await,
        StatusCode::UNAUTHORIZED
    );
    let admin_unready = eventually(Duration::from_secs(10), || async {
        sys.http
            .get(format!("{}/readyz", sys.admin.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(admin_unready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_events_published_straight_to_nats_never_grant_access() {
    let sys = System::start().await.unwrap();
    let disabled = sys.create_key("disabled", false).await;
    let (code, body) = sys
        .update_key(&disabled.id, json!({ "enabled": false }))
        .await;
    assert_eq!(code, StatusCode::OK);
    let last = body["seq"].as_u64().unwrap();
    sys.wait_applied(last).await;

    // A impostor who can publish to NATS, but does not hold the signing key:
    // a Created for a key of their own, and an Enabled for the disabled key,
    // each linked to the real tip and signed with the impostor's own key while
    // naming the real signer.
    let impostor = keyledger_events::SigningKey::generate().unwrap();
    let stolen = keyledger_events::ApiKey::generate().unwrap();
    let forged_id = "0193a0b1-0000-7000-8000-0000000000ff";
    let created = json!({ "v": 2, "type": "Created", "id": "0193a0b1-0000-7000-8000-000000000010",
        "key_id": forged_id, "at": "2026-12-01T10:00:00Z", "actor": { "type": "bootstrap" }, "request_id": "x",
        "data": { "name": "mine", "prefix": stolen.prefix(), "hash": stolen.hash(), "read_only": false, "admin": false } });
    let enabled = json!({ "v": 2, "type": "Enabled", "id": "0193a0b1-0000-7000-8000-000000000011",
        "key_id": disabled.id, "at": "2026-12-01T10:00:00Z", "actor": { "type": "bootstrap" }, "request_id": "x", "data": {} });
    let real_signer = sys.signing.public_key().to_hex();
    let mut seqs = Vec::new();
    for (subject_key, event) in [(forged_id, created), (disabled.id.as_str(), enabled)] {
        let honest = sys.sign_raw(vec![event.clone()]).await;
        let mut forged: Value = serde_json::from_str(&honest).unwrap();
        // Re-sign with the impostor's key: the hash is right, the signature is not.
        let status: Value = sys
            .http
            .get(format!("{}/v1/status", sys.admin.url))
            .bearer_auth(&sys.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tip = keyledger_events::EventHash::from_hex(status["chain"]["tip"].as_str().unwrap())
            .unwrap();
        let fake = keyledger_events::Chain::resume(0, tip, impostor.public_key());
        let resigned: Value = serde_json::from_slice(
            &fake
                .sign_values(vec![event], &impostor, None)
                .unwrap()
                .bytes,
        )
        .unwrap();
        forged["events"][0]["sig"] = resigned["events"][0]["sig"].clone();
        assert_eq!(forged["events"][0]["signer"], real_signer.as_str());
        seqs.push(
            publish_raw(
                &sys,
                &format!("KEYLEDGER.keys.{subject_key}"),
                &forged.to_string(),
            )
            .await,
        );
    }
    sys.wait_applied(seqs[1]).await;
    for i in 0..2 {
        assert_eq!(
            sys.verify(i, stolen.expose_secret(), "GET").await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            sys.verify(i, &disabled.key, "GET").await,
            StatusCode::UNAUTHORIZED
        );
        let s = status(&sys, i).await;
        assert_eq!(s["chain"]["untrusted_messages"], 2, "{s}");
        assert_eq!(s["chain"]["last_untrusted"]["seq"], seqs[1], "{s}");
        assert!(
            s["chain"]["last_untrusted"]["reason"]
                .as_str()
                .unwrap()
                .contains("signature"),
            "{s}"
        );
    }
    // The chain still ends at the last trusted event: admin goes on, and nodes follow.
    let after = sys.create_key("after the forgery", false).await;
    sys.wait_applied(after.seq).await;
    assert_eq!(
        sys.verify_all(&after.key, "POST").await,
        [StatusCode::OK, StatusCode::OK]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_trusts_the_wrong_public_key_is_not_ready() {
    let sys = System::with_nodes(1).await.unwrap();
    let key = sys.create_key("anything", true).await;
    let stranger = keyledger_events::SigningKey::generate().unwrap();
    let wrong =
        keyledger_tests::RunningNode::start(&sys.nats.url(), &sys.stream, stranger.public_key())
            .await
            .unwrap();
    let head = applied_seq(&sys.http, &sys.nodes[0].url).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            applied_seq(&sys.http, &wrong.url).await >= head
        })
        .await
    );
    let r = sys
        .http
        .get(format!("{}/readyz", wrong.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["nothing_trusted"], true, "{body}");
    assert_eq!(
        keyledger_tests::verify_at(&sys.http, &wrong.url, &key.key, "GET").await,
        StatusCode::UNAUTHORIZED,
        "and it grants nothing"
    );
    // The node with the right key is ready and grants the key.
    let r = sys
        .http
        .get(format!("{}/readyz", sys.nodes[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sys.verify(0, &key.key, "GET").await, StatusCode::OK);
}
