//! No raw key anywhere: run the real binaries with debug logging through a
//! key's whole life, then grep everything the run wrote.

use std::path::Path;
use std::time::Duration;

use keyledger_tests::{NatsServer, Process, eventually, free_port, verify_at};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every file under `dir`, as bytes, with its path.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_key_or_admin_token_appears_in_logs_or_storage() {
    let mut nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = "secret-admin-token-9f8e7d6c5b4a";
    let (admin_port, p1, p2) = (free_port(), free_port(), free_port());
    let debug =
        "debug,keyledger=trace,keyledger_admin=trace,keyledger_node=trace,keyledger_eventlog=trace";
    let url = nats.url();
    let common = [("KEYLEDGER_NATS_URL", url.as_str()), ("RUST_LOG", debug)];
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let signing = keyledger_events::SigningKey::generate().unwrap();
    let signing_hex = signing.expose_secret_hex();
    let public_hex = signing.public_key().to_hex();
    let mut envs = common.to_vec();
    envs.push(("KEYLEDGER_ADMIN_TOKEN", token));
    envs.push(("KEYLEDGER_SIGNING_KEY", &signing_hex));
    let mut procs = vec![
        Process::spawn(
            "admin",
            dir.path(),
            &["admin", "--listen", &admin_listen],
            &envs,
        )
        .unwrap(),
    ];
    let mut json_envs = common.to_vec();
    json_envs.push(("KEYLEDGER_LOG_FORMAT", "json"));
    json_envs.push(("KEYLEDGER_PUBLIC_KEY", &public_hex));
    for (i, port) in [p1, p2].iter().enumerate() {
        let listen = format!("127.0.0.1:{port}");
        procs.push(
            Process::spawn(
                &format!("node{i}"),
                dir.path(),
                &["node", "--listen", &listen],
                &json_envs,
            )
            .unwrap(),
        );
    }
    let http = reqwest::Client::new();
    let admin = format!("http://{admin_listen}");
    let nodes = [
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
    ];
    for base in std::iter::once(&admin).chain(nodes.iter()) {
        let up = eventually(Duration::from_secs(15), || async {
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        assert!(up, "{base} not ready");
    }

    // The bootstrap token makes the admin key; the admin key does the rest.
    let admin_key = keyledger_tests::bootstrap_admin_key(&http, &admin, token)
        .await
        .unwrap();
    // A full life for three keys, plus failures that might log things.
    let mut raw_keys = vec![admin_key.clone()];
    let mut responses = admin_key.clone();
    let mut ids = Vec::new();
    for (name, read_only) in [("alpha", true), ("beta", false), ("gamma", false)] {
        let r = http
            .post(format!("{admin}/v1/keys"))
            .bearer_auth(&admin_key)
            .json(&json!({ "name": name, "read_only": read_only }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        responses.push_str(&body.to_string());
        raw_keys.push(body["key"].as_str().unwrap().to_owned());
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for node in &nodes {
        for key in &raw_keys[1..] {
            assert!(
                eventually(Duration::from_secs(5), || async {
                    verify_at(&http, node, key, "GET").await == StatusCode::OK
                })
                .await
            );
            verify_at(&http, node, key, "POST").await;
            // Near misses and conflicting headers, which take the error paths.
            verify_at(&http, node, &format!("{key}x"), "GET").await;
            let _ = http
                .get(format!("{node}/v1/verify"))
                .bearer_auth(key)
                .header("x-api-key", &raw_keys[0][..39])
                .send()
                .await;
            let _ = http
                .post(format!("{node}/example/items"))
                .header("x-api-key", key)
                .send()
                .await;
        }
    }
    let patch = |id: &String, body: Value| {
        http.patch(format!("{admin}/v1/keys/{id}"))
            .bearer_auth(&admin_key)
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(
            &ids[0],
            json!({ "name": "alpha renamed", "read_only": false })
        )
        .await
        .unwrap()
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        patch(&ids[1], json!({ "enabled": false }))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        patch(&ids[1], json!({ "enabled": true }))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let r = http
        .delete(format!("{admin}/v1/keys/{}", ids[2]))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(format!("{admin}/v1/keys?q={}", &raw_keys[1][..8]))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    responses.push_str(&r.text().await.unwrap());
    // Someone pastes a raw key into a URL, or uses it as the admin token: the
    // answers must not echo it, and the logs must not record it.
    let r = http
        .get(format!("{admin}/v1/keys/{}", raw_keys[1]))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.text().await.unwrap().contains(&raw_keys[1]));
    let r = http
        .post(format!("{admin}/v1/keys"))
        .bearer_auth(&raw_keys[2])
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(!body.contains(&raw_keys[2]));
    // Keys and the token pasted into names, request ids and user agents,
    // with text around them: refused, or replaced, never recorded.
    for name in [
        format!("{}x", raw_keys[1]),
        format!("1{}", raw_keys[1]),
        format!("t {token} t"),
        // Split by something a reader would not see, or by a space.
        format!("{}\u{FE0F}{}", &raw_keys[1][..20], &raw_keys[1][20..]),
        format!("{} {}", &raw_keys[1][..20], &raw_keys[1][20..]),
    ] {
        let r = patch(&ids[0], json!({ "name": name })).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!r.text().await.unwrap().contains(&name));
    }
    for (request_id, user_agent) in [
        (
            format!("req-{}", raw_keys[1]),
            format!("client/{}", raw_keys[1]),
        ),
        (format!("x.{token}"), format!("client/{token} (linux)")),
        // Split by a TAB, which recording drops: it would join them again.
        (
            format!("y.{}", raw_keys[1]),
            format!("tool {}\t{}", &raw_keys[1][..20], &raw_keys[1][20..]),
        ),
        (
            format!("z.{token}"),
            format!("tool {}\t{}", &token[..10], &token[10..]),
        ),
        (
            format!("w.{}", raw_keys[1]),
            format!("tool {} {}", &raw_keys[1][..20], &raw_keys[1][20..]),
        ),
    ] {
        let r = http
            .patch(format!("{admin}/v1/keys/{}", ids[0]))
            .bearer_auth(&admin_key)
            .header("x-request-id", &request_id)
            .header("user-agent", &user_agent)
            .json(&json!({ "read_only": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(
            echoed, request_id,
            "a request id holding a secret is replaced"
        );
        let r = patch(&ids[0], json!({ "read_only": false })).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let history = http
        .get(format!("{admin}/v1/keys/{}/history", ids[0]))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !history.contains(&raw_keys[1]) && !history.contains(token),
        "{history}"
    );

    for p in &mut procs {
        assert!(p.terminate().unwrap().success());
    }
    nats.kill();

    // Positive control: the search would find a key where one is.
    assert!(raw_keys.iter().all(|k| contains(responses.as_bytes(), k)));

    let mut written = files_under(dir.path());
    written.extend(files_under(&nats.store_dir()));
    written.push((
        "nats-server.log".into(),
        std::fs::read(nats.log_path()).unwrap_or_default(),
    ));
    assert!(
        written.iter().any(|(p, _)| p.ends_with("admin.err")),
        "logs were captured"
    );
    let logged: usize = written.iter().map(|(_, b)| b.len()).sum();
    assert!(
        logged > 10_000,
        "suspiciously little was written: {logged} bytes"
    );
    for (path, bytes) in &written {
        for key in &raw_keys {
            assert!(!contains(bytes, key), "raw key found in {path}");
            // Not even the part after the public prefix.
            assert!(!contains(bytes, &key[8..]), "key body found in {path}");
        }
        assert!(!contains(bytes, token), "admin token found in {path}");
        assert!(
            !contains(bytes, &signing_hex),
            "signing key found in {path}"
        );
    }
    // The stored events do hold the prefixes (they are public), so the store was really searched.
    let store = files_under(&nats.store_dir());
    assert!(
        raw_keys
            .iter()
            .all(|k| store.iter().any(|(_, b)| contains(b, &k[..8]))),
        "store holds the events"
    );
}
