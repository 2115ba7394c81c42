//! Bad admin input: always a 4xx with the error shape, never a 5xx.

use keyledger_tests::System;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str, case: &str) {
    assert_eq!(status, want, "{case}: {body}");
    assert_eq!(body["error"]["code"], code, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
}

async fn raw(
    sys: &System,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = sys
        .http
        .request(method, format!("{}{path}", sys.admin.url))
        .bearer_auth(&sys.token)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_is_required_and_checked() {
    let sys = System::with_nodes(0).await.unwrap();
    let url = format!("{}/v1/keys", sys.admin.url);
    let cases = [
        ("no header", None),
        (
            "wrong token",
            Some("Bearer not-the-admin-token-at-all".to_owned()),
        ),
        ("token prefix", Some(format!("Bearer {}", &sys.token[..10]))),
        ("basic scheme", Some(format!("Basic {}", sys.token))),
        ("empty bearer", Some("Bearer ".to_owned())),
    ];
    for (case, header) in cases {
        let mut req = sys.http.get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{case}");
        let body: Value = r.json().await.unwrap();
        assert_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            case,
        );
    }
    // The scheme is case-insensitive.
    let r = sys
        .http
        .get(&url)
        .header("authorization", format!("bearer {}", sys.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Two Authorization headers, in either order: neither is taken.
    for pair in [
        [sys.token.clone(), "not-the-admin-token-at-all".to_owned()],
        ["not-the-admin-token-at-all".to_owned(), sys.token.clone()],
    ] {
        let r = sys
            .http
            .get(&url)
            .header("authorization", format!("Bearer {}", pair[0]))
            .header("authorization", format!("Bearer {}", pair[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_that_take_no_query_refuse_one() {
    let sys = System::with_nodes(0).await.unwrap();
    let key = sys.create_key("kept", true).await;
    let id = &key.id;
    for (method, path, body) in [
        (Method::DELETE, format!("/v1/keys/{id}?dry_run=true"), None),
        (
            Method::PATCH,
            format!("/v1/keys/{id}?dry_run=true"),
            Some(json!({ "enabled": false })),
        ),
        (Method::GET, format!("/v1/keys/{id}?foo=1"), None),
        (Method::GET, format!("/v1/keys/{id}/history?x=1"), None),
        (Method::GET, "/v1/status?x=1".to_owned(), None),
        (
            Method::POST,
            "/v1/keys?admin=true".to_owned(),
            Some(json!({ "name": "n" })),
        ),
    ] {
        let (status, answer) = sys.admin_call(method.clone(), &path, body).await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            &format!("{method} {path}"),
        );
    }
    // Nothing happened.
    let (status, view) = sys
        .admin_call(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["enabled"], true);
    assert_eq!(view["version"], key.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_4xx_answers() {
    let sys = System::with_nodes(0).await.unwrap();
    let json_ct = Some("application/json");
    let post = |body: &str| {
        (
            Method::POST,
            "/v1/keys".to_owned(),
            json_ct,
            body.as_bytes().to_vec(),
        )
    };
    let long_name = "n".repeat(201);
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let cases: Vec<(
        &str,
        (Method, String, Option<&str>, Vec<u8>),
        StatusCode,
        &str,
    )> = vec![
        (
            "no content type",
            (
                Method::POST,
                "/v1/keys".into(),
                None,
                br#"{"name":"a"}"#.to_vec(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "text content type",
            (
                Method::POST,
                "/v1/keys".into(),
                Some("text/plain"),
                br#"{"name":"a"}"#.to_vec(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "not JSON",
            post("{name: a"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "empty body",
            post(""),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            (
                Method::POST,
                "/v1/keys".into(),
                json_ct,
                vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            ),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "deeply nested",
            post(&nested),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "no name",
            post("{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "array",
            post("[1,2]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "null",
            post("null"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "unknown field",
            post(r#"{"name":"a","owner":true}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "smuggled key",
            post(r#"{"name":"a","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "read_only not bool",
            post(r#"{"name":"a","read_only":"yes"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "name not string",
            post(r#"{"name":42}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "empty name",
            post(r#"{"name":""}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "blank name",
            post(r#"{"name":"   "}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "long name",
            post(&json!({ "name": long_name }).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "control character",
            post(r#"{"name":"a\u0007b"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "newline",
            post(r#"{"name":"a\nb"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "oversized",
            post(&json!({ "name": "x".repeat(100_000) }).to_string()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "empty patch",
            (
                Method::PATCH,
                "/v1/keys/01933c39-6a5b-7000-8000-000000000001".into(),
                json_ct,
                b"{}".to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_update",
        ),
        (
            "patch unknown key",
            (
                Method::PATCH,
                "/v1/keys/01933c39-6a5b-7000-8000-000000000001".into(),
                json_ct,
                br#"{"enabled":false}"#.to_vec(),
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "patch bad id",
            (
                Method::PATCH,
                "/v1/keys/not-an-id".into(),
                json_ct,
                br#"{"enabled":false}"#.to_vec(),
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "patch bad field",
            (
                Method::PATCH,
                "/v1/keys/01933c39-6a5b-7000-8000-000000000001".into(),
                json_ct,
                br#"{"prefix":"AAAAAAAA"}"#.to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "delete unknown",
            (
                Method::DELETE,
                "/v1/keys/01933c39-6a5b-7000-8000-000000000001".into(),
                None,
                vec![],
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "get bad id",
            (Method::GET, "/v1/keys/..%2F..%2Fetc".into(), None, vec![]),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "get long id",
            (
                Method::GET,
                format!("/v1/keys/{}", "a".repeat(5000)),
                None,
                vec![],
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "limit 0",
            (Method::GET, "/v1/keys?limit=0".into(), None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "limit too big",
            (Method::GET, "/v1/keys?limit=100000".into(), None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "limit not a number",
            (Method::GET, "/v1/keys?limit=ten".into(), None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "limit negative",
            (Method::GET, "/v1/keys?limit=-1".into(), None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "bad cursor",
            (Method::GET, "/v1/keys?cursor=garbage".into(), None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "unknown parameter",
            (Method::GET, "/v1/keys?sort=name".into(), None, vec![]),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "long query",
            (
                Method::GET,
                format!("/v1/keys?q={}", "q".repeat(300)),
                None,
                vec![],
            ),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "bidi override in name",
            post("{\"name\":\"invoice\\u202Etxt.exe\"}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "invalid UTF-8 in the id",
            (Method::GET, "/v1/keys/%FF".into(), None, vec![]),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "invalid UTF-8 in a PATCH id",
            (
                Method::PATCH,
                "/v1/keys/%FF%FE".into(),
                json_ct,
                br#"{"enabled":false}"#.to_vec(),
            ),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "no such route",
            (Method::GET, "/v1/nothing".into(), None, vec![]),
            StatusCode::NOT_FOUND,
            "route_not_found",
        ),
        (
            "wrong method",
            (Method::PUT, "/v1/keys".into(), json_ct, b"{}".to_vec()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (case, (method, path, ct, body), want, code) in cases {
        let (status, body) = raw(&sys, method, &path, ct, body).await;
        assert_error(status, &body, want, code, case);
    }
    // Nothing of the above reached the stream.
    assert_eq!(sys.stream_messages().await.len(), 1, "only the admin key");
    // And the service is still fine.
    let key = sys.create_key(&"é".repeat(200), true).await;
    assert_eq!(key.seq, 2, "after the admin key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_and_recorded() {
    let sys = System::with_nodes(0).await.unwrap();
    let r = sys
        .http
        .post(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&sys.token)
        .header("x-request-id", "trace-me-123")
        .json(&json!({ "name": "traced" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-123");
    let messages = sys.stream_messages().await;
    let first: Value = serde_json::from_slice(&messages[0].2).unwrap();
    assert_eq!(first["events"][0]["actor"]["type"], "bootstrap");
    let admin_id = first["events"][0]["key_id"].clone();
    let event: Value = serde_json::from_slice(&messages[1].2).unwrap();
    assert_eq!(event["events"][0]["request_id"], "trace-me-123");
    assert_eq!(event["events"][0]["actor"]["type"], "admin_key");
    assert_eq!(event["events"][0]["actor"]["key_id"], admin_id);
    assert_eq!(event["events"][0]["origin"]["ip"], "127.0.0.1");
    // A malformed request id is replaced, not trusted.
    let r = sys
        .http
        .get(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&sys.token)
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
}

/// Sends raw bytes on a fresh connection; returns what the server sent back
/// before closing (or before `limit`).
async fn raw_exchange(
    url: &str,
    request: &[u8],
    limit: std::time::Duration,
) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await;
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_lying_clients_cannot_hold_connections() {
    let sys = System::with_nodes(1).await.unwrap();
    let limit = std::time::Duration::from_secs(8);
    // Half a header, then silence, or nothing at all (not even an HTTP/2
    // preface): closed after the header read timeout (1 s in tests).
    for url in [&sys.admin.url, &sys.nodes[0].url] {
        let (_, took) = raw_exchange(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", limit).await;
        assert!(
            took < limit,
            "{url}: a half-sent header held the connection"
        );
        let (_, took) = raw_exchange(url, b"", limit).await;
        assert!(took < limit, "{url}: a silent connection was held");
        let (_, took) = raw_exchange(url, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", limit).await;
        assert!(took < limit, "{url}: an HTTP/2 preface held the connection");
    }
    // A body announced as huge is refused at once, not waited for.
    let request = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n",
        sys.token
    );
    let (answer, took) = raw_exchange(&sys.admin.url, request.as_bytes(), limit).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(took < std::time::Duration::from_secs(2));
    // A body that never comes: 408 after the request timeout (5 s in tests).
    let request = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
        sys.token
    );
    let (answer, took) = raw_exchange(&sys.admin.url, request.as_bytes(), limit).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{answer} after {took:?}"
    );
    assert!(
        answer.contains(r#""code":"request_timeout""#),
        "408 has the error shape: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_pasted_into_the_wrong_place_are_never_echoed_or_stored() {
    let sys = System::with_nodes(0).await.unwrap();
    let key = sys.create_key("victim", true).await;
    let post = |request_id: &str, body: Value| {
        sys.http
            .post(format!("{}/v1/keys", sys.admin.url))
            .bearer_auth(&sys.token)
            .header("x-request-id", request_id)
            .json(&body)
            .send()
    };
    // A key or the bootstrap token as the request id: replaced, not recorded.
    for secret in [key.key.as_str(), sys.bootstrap.as_str(), sys.token.as_str()] {
        let r = post(secret, json!({ "name": "fine" })).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_ne!(r.headers()["x-request-id"], secret);
    }
    // A key as a name, as an unknown field, as a bad value: refused, not echoed.
    for body in [
        json!({ "name": format!("prod {}", key.key) }),
        json!({ "name": "x", key.key.clone(): true }),
        json!({ "name": "x", "read_only": key.key }),
    ] {
        let r = post("plain-id", body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(&key.key), "{text}");
        assert!(!text.contains(&key.key[8..]), "{text}");
    }
    let r = sys
        .http
        .get(format!("{}/v1/keys?{}=1", sys.admin.url, key.key))
        .bearer_auth(&sys.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&key.key), "{text}");
    for (_, _, payload) in sys.stream_messages().await {
        let text = String::from_utf8_lossy(&payload);
        for secret in [&key.key, &sys.bootstrap, &sys.token] {
            assert!(!text.contains(secret.as_str()), "a secret was stored");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_revoked_while_its_request_is_in_flight_changes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sys = System::with_nodes(0).await.unwrap();
    let target = sys.create_key("target", true).await;
    let revocations = [
        (Method::PATCH, json!({ "enabled": false })),
        (Method::PATCH, json!({ "read_only": true })),
        (Method::DELETE, Value::Null),
    ];
    for (n, (how, revocation)) in revocations.into_iter().enumerate() {
        let (status, x) = sys
            .admin_call(
                Method::POST,
                "/v1/keys",
                Some(json!({ "name": format!("doomed admin {n}"), "admin": true })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{x}");
        let (x_key, x_id) = (x["key"].as_str().unwrap(), x["id"].as_str().unwrap());
        // Two requests by X: their headers pass authentication, their bodies wait.
        let requests = [
            (
                "PATCH",
                format!("/v1/keys/{}", target.id),
                json!({ "name": format!("renamed by {n}") }),
            ),
            (
                "POST",
                "/v1/keys".to_owned(),
                json!({ "name": format!("persistence {n}"), "admin": true }),
            ),
        ];
        let mut pending = Vec::new();
        for (method, path, body) in &requests {
            let body = body.to_string();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {x_key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let addr = sys.admin.url.trim_start_matches("http://");
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            pending.push((stream, body));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // X is revoked (acknowledged) while they wait.
        let (status, body) = sys
            .admin_call(
                how.clone(),
                &format!("/v1/keys/{x_id}"),
                (!revocation.is_null()).then_some(revocation),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (mut stream, body) in pending {
            stream.write_all(body.as_bytes()).await.unwrap();
            let mut answer = vec![0u8; 4096];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
                    .await
                    .unwrap()
                    .unwrap();
            let answer = String::from_utf8_lossy(&answer[..read]);
            assert!(answer.starts_with("HTTP/1.1 401"), "case {n}: {answer}");
        }
        let (_, listed) = sys
            .admin_call(Method::GET, "/v1/keys?q=persistence", None)
            .await;
        assert_eq!(listed["keys"], json!([]), "case {n}: no key was made");
        let (_, now) = sys
            .admin_call(Method::GET, &format!("/v1/keys/{}", target.id), None)
            .await;
        assert_eq!(now["name"], "target", "case {n}: the key was not renamed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_as_the_request_times_out_is_answered_by_its_outcome_not_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sys = System::with_nodes(0).await.unwrap();
    let target = sys.create_key("slow target", false).await;
    let body = json!({ "enabled": false }).to_string();
    let head = format!(
        "PATCH /v1/keys/{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        target.id,
        sys.token,
        body.len()
    );
    let addr = sys.admin.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body comes late (the request timeout is 5 s in tests), and NATS
    // hangs just as the change is sent: it cannot be confirmed in time.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    sys.nats.freeze(true).unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    sys.nats.freeze(false).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("not_confirmed"),
        "a change that may land is never answered 408 (nothing changed): {answer}"
    );
}
