//! A key's life, seen from both nodes.

use std::time::Duration;

use keyledger_tests::{System, eventually, verify_at};
use reqwest::{Method, StatusCode};
use serde_json::json;

const OK: StatusCode = StatusCode::OK;
const DENIED: StatusCode = StatusCode::UNAUTHORIZED;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_both_nodes_accept_the_key() {
    let sys = System::start().await.unwrap();
    let key = sys.create_key("ci deploy", false).await;
    assert_eq!(key.key.len(), 40);
    assert_eq!(&key.key[..8], key.prefix);
    sys.wait_applied(key.seq).await;
    assert_eq!(sys.verify_all(&key.key, "GET").await, [OK, OK]);
    assert_eq!(sys.verify_all(&key.key, "POST").await, [OK, OK]);

    // X-Key-Id names the key; the key itself is never echoed.
    let r = sys
        .http
        .get(format!("{}/v1/verify", sys.nodes[0].url))
        .header("x-api-key", &key.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-key-id"], key.id.as_str());
    let text = format!("{:?}{}", r.headers().clone(), r.text().await.unwrap());
    assert!(!text.contains(&key.key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_key_reads_but_cannot_write() {
    let sys = System::start().await.unwrap();
    // read_only defaults to true.
    let (status, body) = sys
        .admin_call(Method::POST, "/v1/keys", Some(json!({ "name": "reader" })))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["read_only"], true);
    assert_eq!(body["enabled"], true);
    let key = body["key"].as_str().unwrap().to_owned();
    sys.wait_applied(body["seq"].as_u64().unwrap()).await;
    for method in ["GET", "HEAD", "OPTIONS"] {
        assert_eq!(sys.verify_all(&key, method).await, [OK, OK], "{method}");
    }
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        assert_eq!(
            sys.verify_all(&key, method).await,
            [FORBIDDEN, FORBIDDEN],
            "{method}"
        );
    }
    // X-Original-Method (nginx) works too; without either, the request's own method counts.
    let node = &sys.nodes[1].url;
    let r = sys
        .http
        .get(format!("{node}/v1/verify"))
        .header("x-api-key", &key)
        .header("x-original-method", "DELETE");
    assert_eq!(r.send().await.unwrap().status(), FORBIDDEN);
    let r = sys
        .http
        .post(format!("{node}/v1/verify"))
        .header("x-api-key", &key);
    assert_eq!(r.send().await.unwrap().status(), FORBIDDEN);

    // The example API behind the tower Layer agrees.
    let items = format!("{node}/example/items");
    let r = sys.http.get(&items).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), OK);
    let r = sys
        .http
        .post(&items)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), FORBIDDEN);
    let r = sys.http.get(&items).send().await.unwrap();
    assert_eq!(r.status(), DENIED);
    // In process, the request's own method counts: a client cannot claim a read.
    for header in ["x-forwarded-method", "x-original-method"] {
        let r = sys
            .http
            .post(&items)
            .bearer_auth(&key)
            .header(header, "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), FORBIDDEN, "{header}");
    }
    // Envoy ext_authz appends the original path to /v1/verify (for the
    // protected API's root, `/`).
    for original in ["/api/orders?id=7", "/", "/?a=1"] {
        let r = sys
            .http
            .get(format!("{node}/v1/verify{original}"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), OK, "{original}");
    }
    // Wrong methods on the node's own routes get the JSON error shape too.
    let r = sys
        .http
        .delete(format!("{node}/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // A read-write key writes through the Layer; the handler sees which key it was.
    let writer = sys.create_key("writer", false).await;
    sys.wait_applied(writer.seq).await;
    let r = sys
        .http
        .post(&items)
        .header("x-api-key", &writer.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(created["created_by"], writer.id.as_str());
    let listed: serde_json::Value = sys
        .http
        .get(&items)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_scope_change_reach_both_nodes() {
    let sys = System::start().await.unwrap();
    let key = sys.create_key("old name", true).await;
    let (status, body) = sys
        .update_key(
            &key.id,
            json!({ "name": "  new name  ", "read_only": false }),
        )
        .await;
    assert_eq!(status, OK, "{body}");
    assert_eq!(body["name"], "new name");
    assert_eq!(body["read_only"], false);
    let seq = body["seq"].as_u64().unwrap();
    assert!(seq > key.seq);
    sys.wait_applied(seq).await;
    assert_eq!(sys.verify_all(&key.key, "POST").await, [OK, OK]);
    let (_, got) = sys
        .admin_call(Method::GET, &format!("/v1/keys/{}", key.id), None)
        .await;
    assert_eq!(got["name"], "new name");

    // Both fields land in one message, as two events.
    let messages = sys.stream_messages().await;
    let (_, _, payload) = messages.iter().find(|(s, _, _)| *s == seq).unwrap();
    let commit: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let types: Vec<&str> = commit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Renamed", "ScopeChanged"]);
    for e in commit["events"].as_array().unwrap() {
        for field in ["v", "id", "key_id", "at", "actor", "request_id"] {
            assert!(!e[field].is_null(), "event lacks {field}: {e}");
        }
    }

    // Back to read-only.
    let (_, body) = sys.update_key(&key.id, json!({ "read_only": true })).await;
    sys.wait_applied(body["seq"].as_u64().unwrap()).await;
    assert_eq!(
        sys.verify_all(&key.key, "POST").await,
        [FORBIDDEN, FORBIDDEN]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_is_enforced_by_every_node_then_enable_restores() {
    let sys = System::start().await.unwrap();
    let key = sys.create_key("svc", false).await;
    sys.wait_applied(key.seq).await;
    assert_eq!(sys.verify_all(&key.key, "GET").await, [OK, OK]);

    let (status, body) = sys.update_key(&key.id, json!({ "enabled": false })).await;
    assert_eq!(status, OK);
    assert_eq!(body["enabled"], false);
    sys.wait_applied(body["seq"].as_u64().unwrap()).await;
    assert_eq!(sys.verify_all(&key.key, "GET").await, [DENIED, DENIED]);

    let (_, body) = sys.update_key(&key.id, json!({ "enabled": true })).await;
    sys.wait_applied(body["seq"].as_u64().unwrap()).await;
    assert_eq!(sys.verify_all(&key.key, "GET").await, [OK, OK]);

    // A PATCH that changes nothing appends nothing.
    let before = sys.stream_messages().await.len();
    let (status, _) = sys.update_key(&key.id, json!({ "enabled": true })).await;
    assert_eq!(status, OK);
    assert_eq!(sys.stream_messages().await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_rejects_everywhere_and_keeps_the_events() {
    let sys = System::start().await.unwrap();
    let key = sys.create_key("doomed", false).await;
    let other = sys.create_key("survivor", false).await;
    let (status, body) = sys.remove_key(&key.id).await;
    assert_eq!(status, OK, "{body}");
    let seq = body["seq"].as_u64().unwrap();
    sys.wait_applied(seq).await;
    assert_eq!(sys.verify_all(&key.key, "GET").await, [DENIED, DENIED]);
    assert_eq!(sys.verify_all(&other.key, "GET").await, [OK, OK]);

    let (status, _) = sys
        .admin_call(Method::GET, &format!("/v1/keys/{}", key.id), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = sys.admin_call(Method::GET, "/v1/keys", None).await;
    let ids: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["admin"] == false)
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other.id.as_str()]);
    // Removing again, or changing a removed key, is a 404.
    assert_eq!(sys.remove_key(&key.id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        sys.update_key(&key.id, json!({ "enabled": true })).await.0,
        StatusCode::NOT_FOUND
    );

    let subject = format!("KEYLEDGER.keys.{}", key.id);
    let kinds: Vec<String> = sys
        .stream_messages()
        .await
        .iter()
        .filter(|(_, s, _)| *s == subject)
        .flat_map(|(_, _, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds, ["Created", "Removed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_replays_the_stream() {
    let mut sys = System::start().await.unwrap();
    let removed = sys.create_key("removed", false).await;
    let disabled = sys.create_key("disabled", false).await;
    let live = sys.create_key("live", true).await;
    sys.remove_key(&removed.id).await;
    let (_, body) = sys
        .update_key(&disabled.id, json!({ "enabled": false }))
        .await;
    let head = body["seq"].as_u64().unwrap();

    let old = sys.nodes.remove(0);
    old.stop().await;
    let node = sys.start_node(&sys.stream).await.unwrap();
    let ready = keyledger_tests::becomes_ready(&sys.http, &node.url, Duration::from_secs(10)).await;
    assert!(ready);
    let status: serde_json::Value = sys
        .http
        .get(format!("{}/v1/status", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["applied_seq"], head);
    assert_eq!(status["stream_head_at_start"], head);
    assert_eq!(status["keys"], 3, "two live API keys and the admin key");
    assert_eq!(
        verify_at(&sys.http, &node.url, &removed.key, "GET").await,
        DENIED
    );
    assert_eq!(
        verify_at(&sys.http, &node.url, &disabled.key, "GET").await,
        DENIED
    );
    assert_eq!(verify_at(&sys.http, &node.url, &live.key, "GET").await, OK);
    assert_eq!(
        verify_at(&sys.http, &node.url, &live.key, "POST").await,
        FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_an_empty_stream_picks_up_later_keys() {
    let sys = System::with_nodes(0).await.unwrap();
    let admin = sys.start_admin("EMPTY").await.unwrap();
    let node = sys.start_node("EMPTY").await.unwrap();
    assert!(keyledger_tests::becomes_ready(&sys.http, &node.url, Duration::from_secs(10)).await);
    let status: serde_json::Value = sys
        .http
        .get(format!("{}/v1/status", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["applied_seq"], 0);
    assert_eq!(status["ready"], true);
    let admin_key = keyledger_tests::bootstrap_admin_key(&sys.http, &admin.url, &sys.bootstrap)
        .await
        .unwrap();
    let r: serde_json::Value = sys
        .http
        .post(format!("{}/v1/keys", admin.url))
        .bearer_auth(admin_key)
        .json(&serde_json::json!({ "name": "later" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = r["key"].as_str().unwrap();
    let picked_up = eventually(Duration::from_secs(5), || async {
        verify_at(&sys.http, &node.url, key, "GET").await == OK
    })
    .await;
    assert!(picked_up, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_miss_keys_are_rejected() {
    let sys = System::start().await.unwrap();
    let key = sys.create_key("target", false).await;
    sys.wait_applied(key.seq).await;
    let k = key.key.as_str();
    let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut misses = vec![
        String::new(),
        format!("{}{}", &k[..8], &alphabet[..32]),
        format!("{k}x"),
        format!("{k}{k}"),
        k[..39].to_owned(),
        k.to_uppercase(),
        k.to_lowercase(),
        format!(" {k}x"),
    ];
    for i in [0, 7, 8, 20, 33, 34, 39] {
        let mut bytes = k.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        misses.push(String::from_utf8(bytes).unwrap());
    }
    for miss in misses.iter().filter(|m| m.as_str() != k) {
        assert_eq!(
            sys.verify_all(miss, "GET").await,
            [DENIED, DENIED],
            "{miss:?}"
        );
    }
    // Missing, or two different keys in one request.
    let node = &sys.nodes[0].url;
    let r = sys
        .http
        .get(format!("{node}/v1/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), DENIED);
    let r = sys
        .http
        .get(format!("{node}/v1/verify"))
        .bearer_auth(k)
        .header("x-api-key", &misses[1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), DENIED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflicting_keys");
    // The real key still works.
    assert_eq!(sys.verify_all(k, "GET").await, [OK, OK]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_searches_and_pages_without_skips_or_repeats() {
    let sys = System::with_nodes(0).await.unwrap();
    let mut billing = Vec::new();
    for i in 0..23 {
        let name = if i % 2 == 0 {
            format!("Billing worker {i}")
        } else {
            format!("search {i}")
        };
        let key = sys.create_key(&name, true).await;
        if i % 2 == 0 {
            billing.push(key.id);
        }
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/keys?q=BILLING&limit=5&cursor={c}"),
            None => "/v1/keys?q=BILLING&limit=5".to_owned(),
        };
        let (status, body) = sys.admin_call(Method::GET, &path, None).await;
        assert_eq!(status, OK, "{body}");
        pages += 1;
        for k in body["keys"].as_array().unwrap() {
            assert!(
                k.get("key").is_none() && k.get("hash").is_none(),
                "listing leaks secrets: {k}"
            );
            seen.push(k["id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, billing);
    assert_eq!(pages, 3);
    // Search by prefix.
    let key = sys.create_key("zzz", true).await;
    let (_, body) = sys
        .admin_call(
            Method::GET,
            &format!("/v1/keys?q={}", &key.prefix[..6]),
            None,
        )
        .await;
    let ids: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&key.id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_admin_recover_after_nats_is_killed_and_restarted() {
    let mut sys = System::start().await.unwrap();
    let key = sys.create_key("survives", false).await;
    sys.wait_applied(key.seq).await;

    sys.nats.kill();
    // Nodes keep validating from memory while NATS is down.
    assert_eq!(sys.verify_all(&key.key, "GET").await, [OK, OK]);
    // Admin cannot append: a clear 503, not a hang or a 500.
    let (status, body) = sys
        .update_key(&key.id, json!({ "name": "while down" }))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    sys.nats.restart().unwrap();
    // Once NATS is back, a revocation reaches both nodes again.
    let started = std::time::Instant::now();
    let revoked = eventually(Duration::from_secs(30), || async {
        let (status, _) = sys.update_key(&key.id, json!({ "enabled": false })).await;
        status == OK
    })
    .await;
    assert!(revoked, "admin did not recover");
    let ok = eventually(Duration::from_secs(30), || async {
        sys.verify_all(&key.key, "GET").await == [DENIED, DENIED]
    })
    .await;
    assert!(
        ok,
        "nodes did not pick up the revocation after NATS came back"
    );
    eprintln!("recovered in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_nothing_until_its_replay_is_done() {
    let sys = System::with_nodes(0).await.unwrap();
    let key = sys.create_key("early", false).await;
    // A node on a stream that does not exist yet cannot have replayed anything.
    let node = sys.start_node("NOT_YET").await.unwrap();
    let r = sys
        .http
        .get(format!("{}/v1/verify", node.url))
        .header("x-api-key", &key.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready");
    let r = sys
        .http
        .get(format!("{}/example/items", node.url))
        .header("x-api-key", &key.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = sys
        .http
        .get(format!("{}/readyz", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Once the stream appears (admin creates it), the node catches up and answers.
    let _admin = sys.start_admin("NOT_YET").await.unwrap();
    let ready = keyledger_tests::becomes_ready(&sys.http, &node.url, Duration::from_secs(10)).await;
    assert!(ready);
    assert_eq!(
        verify_at(&sys.http, &node.url, &key.key, "GET").await,
        DENIED,
        "a key of another stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_answers_503_not_404_until_its_replay_is_done() {
    use tower::ServiceExt as _;
    let sys = System::with_nodes(0).await.unwrap();
    let mut last = None;
    for i in 0..200 {
        last = Some(sys.create_key(&format!("k{i}"), true).await);
    }
    let last = last.unwrap();
    // A second admin process on the same stream, asked before it caught up.
    let log = keyledger_eventlog::EventLog::connect(&sys.nats.url(), &sys.stream)
        .await
        .unwrap();
    let admin = keyledger_admin::Admin::start(
        log,
        keyledger_admin::AdminConfig {
            token: keyledger_admin::AdminToken::new(&sys.bootstrap).unwrap(),
            stream: keyledger_eventlog::StreamOptions::default(),
            feed: keyledger_eventlog::FeedOptions::new(sys.signing.public_key()),
            signing: sys.signing.clone(),
            rotate_to: None,
        },
    )
    .await
    .unwrap();
    let get = || {
        axum::http::Request::get(format!("/v1/keys/{}", last.id))
            .header("authorization", format!("Bearer {}", sys.token))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let early = admin.router().oneshot(get()).await.unwrap();
    assert!(
        !admin.feed().borrow().caught_up,
        "the replay was too quick to test"
    );
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    let mut feed = admin.feed();
    tokio::time::timeout(Duration::from_secs(10), feed.wait_for(|f| f.caught_up))
        .await
        .unwrap()
        .unwrap();
    let late = admin.router().oneshot(get()).await.unwrap();
    assert_eq!(late.status(), StatusCode::OK);
}
