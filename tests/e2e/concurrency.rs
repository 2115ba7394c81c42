//! Two admin processes racing on one key.

use std::time::Duration;

use keyledger_events::{Commit, KeyState, evolve};
use keyledger_tests::{System, applied_seq, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_conflicting_updates_lose_nothing_and_every_view_equals_the_fold() {
    let sys = System::start().await.unwrap();
    let second = sys.start_admin(&sys.stream).await.unwrap();
    let admins = [sys.admin.url.clone(), second.url.clone()];
    let key = sys.create_key("contended", false).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            applied_seq_admin(&sys, &second.url).await >= key.seq
        })
        .await
    );

    let mut calls = Vec::new();
    for i in 0..20usize {
        let url = format!("{}/v1/keys/{}", admins[i % 2], key.id);
        let http = sys.http.clone();
        let token = sys.token.clone();
        let body =
            json!({ "name": format!("name {i}"), "read_only": i % 2 == 0, "enabled": i % 3 != 0 });
        calls.push(tokio::spawn(async move {
            let r = http
                .patch(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap(), body)
        }));
    }
    let mut won = Vec::new();
    for call in calls {
        let (status, answer, asked) = call.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status} {answer}"
        );
        if status == StatusCode::OK {
            won.push(answer["seq"].as_u64().unwrap());
            // The answer is the key as this update left it, not as a later
            // writer did.
            assert_eq!(answer["version"], answer["seq"], "{answer}");
            for field in ["name", "read_only", "enabled"] {
                assert_eq!(answer[field], asked[field], "{field}: {answer} for {asked}");
            }
        }
    }
    assert!(!won.is_empty());
    let mut distinct = won.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        won.len(),
        "two updates claim one sequence: {won:?}"
    );

    // Every acknowledged update is in the stream, once; nothing else is.
    let messages = sys.stream_messages().await;
    let renames: Vec<u64> = messages
        .iter()
        .filter(|(_, _, p)| String::from_utf8_lossy(p).contains("\"Renamed\""))
        .map(|(s, _, _)| *s)
        .collect();
    distinct.sort_unstable();
    assert_eq!(renames, distinct);

    // Fold the stream with the domain's own rules and compare every view.
    let mut state = KeyState::Absent;
    for (_, _, payload) in &messages {
        for event in Commit::decode(payload).unwrap().events() {
            state = evolve(state, &event.change);
        }
    }
    let KeyState::Live(folded) = state else {
        panic!("key not live after the fold")
    };
    let head = messages.last().unwrap().0;
    sys.wait_applied(head).await;
    for admin in &admins {
        assert!(
            eventually(Duration::from_secs(5), || async {
                applied_seq_admin(&sys, admin).await >= head
            })
            .await
        );
        let view: Value = sys
            .http
            .get(format!("{admin}/v1/keys/{}", key.id))
            .bearer_auth(&sys.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["name"], folded.name.as_str(), "{admin}");
        assert_eq!(view["read_only"], folded.read_only, "{admin}");
        assert_eq!(view["enabled"], folded.enabled, "{admin}");
        assert_eq!(view["version"], head);
    }
    let expect = |method: &str| match (folded.enabled, folded.read_only, method) {
        (false, _, _) => StatusCode::UNAUTHORIZED,
        (true, true, "POST") => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    };
    for method in ["GET", "POST"] {
        assert_eq!(
            sys.verify_all(&key.key, method).await,
            [expect(method), expect(method)],
            "{method}"
        );
    }
    second.stop().await;
}

async fn applied_seq_admin(sys: &System, admin: &str) -> u64 {
    let Ok(r) = sys
        .http
        .get(format!("{admin}/v1/status"))
        .bearer_auth(&sys.token)
        .send()
        .await
    else {
        return 0;
    };
    r.json::<Value>()
        .await
        .ok()
        .and_then(|v| v["applied_seq"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_through_two_admins_interleave_without_loss() {
    let sys = System::with_nodes(1).await.unwrap();
    let second = sys.start_admin(&sys.stream).await.unwrap();
    let mut calls = Vec::new();
    for i in 0..20usize {
        let url = if i % 2 == 0 {
            sys.admin.url.clone()
        } else {
            second.url.clone()
        };
        let http = sys.http.clone();
        let token = sys.token.clone();
        calls.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/v1/keys"))
                .bearer_auth(token)
                .json(&json!({ "name": format!("k{i}"), "read_only": false }))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut keys = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.push(body["key"].as_str().unwrap().to_owned());
    }
    let head = sys.stream_messages().await.len() as u64;
    assert_eq!(head, 21, "the admin key and 20 keys");
    sys.wait_applied(head).await;
    for key in &keys {
        assert_eq!(sys.verify(0, key, "POST").await, StatusCode::OK);
    }
    assert_eq!(applied_seq(&sys.http, &sys.nodes[0].url).await, 21);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_never_answers_404_for_a_key_another_admin_just_created() {
    let sys = System::with_nodes(1).await.unwrap();
    let second = sys.start_admin(&sys.stream).await.unwrap();
    for i in 0..30 {
        let key = sys.create_key(&format!("fresh {i}"), false).await;
        // Straight to the other admin, which may not have seen the create yet.
        let (get, delete) = if i % 2 == 0 {
            let r = sys
                .http
                .get(format!("{}/v1/keys/{}", second.url, key.id))
                .bearer_auth(&sys.token)
                .send()
                .await
                .unwrap();
            let get = r.status();
            let r = sys
                .http
                .delete(format!("{}/v1/keys/{}", second.url, key.id))
                .bearer_auth(&sys.token)
                .send()
                .await
                .unwrap();
            (get, r.status())
        } else {
            let r = sys
                .http
                .delete(format!("{}/v1/keys/{}", second.url, key.id))
                .bearer_auth(&sys.token)
                .send()
                .await
                .unwrap();
            (StatusCode::OK, r.status())
        };
        assert_eq!(get, StatusCode::OK, "GET {i}");
        assert_eq!(delete, StatusCode::OK, "DELETE {i}");
        let seq = sys.stream_messages().await.last().unwrap().0;
        sys.wait_applied(seq).await;
        assert_eq!(
            sys.verify(0, &key.key, "GET").await,
            StatusCode::UNAUTHORIZED
        );
    }
    second.stop().await;
}
