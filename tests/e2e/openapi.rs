//! `/openapi.json` on admin and nodes: OpenAPI 3.1 generated from the code.
//! Every route the services serve is in their document, every documented
//! operation is served, and real answers validate against the schemas.

use keyledger_tests::System;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn document(sys: &System, base: &str) -> Value {
    let r = sys
        .http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    doc
}

/// The (method, path template) pairs a document describes.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "options", "head", "patch"]
                .contains(&method.as_str())
            {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// Checks `body`, answered with `status` to `method path`, against the document.
fn conforms(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let errors = violations(doc, method, path, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

/// What is wrong with `body` as an answer `status` to `method path`.
fn violations(
    doc: &Value,
    method: &str,
    path: &str,
    status: StatusCode,
    body: &Value,
) -> Vec<String> {
    let response = &doc["paths"][path][method.to_lowercase()]["responses"][status.as_str()];
    assert!(
        !response.is_null(),
        "{method} {path} does not document {status}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} {status} has no JSON schema"
    );
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).unwrap();
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

async fn call(
    sys: &System,
    base: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = sys.http.request(method, format!("{base}{path}"));
    if let Some(auth) = auth {
        req = req.bearer_auth(auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_answers_match_the_document() {
    let sys = System::with_nodes(1).await.unwrap();
    let admin = &sys.admin.url;
    let node = &sys.nodes[0].url;
    let admin_doc = document(&sys, admin).await;
    let node_doc = document(&sys, node).await;

    // The routes the README documents (all the services serve, but for the
    // console's own page and assets and /openapi.json itself) and the documents
    // agree exactly.
    let served = |list: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = list
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        operations(&admin_doc),
        served(&[
            ("GET", "/v1/keys"),
            ("POST", "/v1/keys"),
            ("GET", "/v1/keys/{id}"),
            ("PATCH", "/v1/keys/{id}"),
            ("DELETE", "/v1/keys/{id}"),
            ("GET", "/v1/keys/{id}/history"),
            ("GET", "/v1/events"),
            ("GET", "/v1/status"),
            ("GET", "/healthz"),
            ("GET", "/readyz"),
            ("GET", "/metrics"),
        ])
    );
    let mut node_routes = vec![
        ("GET", "/v1/status"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/example/items"),
        ("POST", "/example/items"),
    ];
    for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        node_routes.push((m, "/v1/verify"));
        node_routes.push((m, "/v1/verify/{original_path}"));
    }
    assert_eq!(operations(&node_doc), served(&node_routes));
    // And each documented operation is really served (no 404 route_not_found, no 405).
    let key = sys.create_key("probe", false).await;
    for (doc, base, auth) in [
        (&admin_doc, admin, Some(sys.token.as_str())),
        (&node_doc, node, None),
    ] {
        for (method, path) in operations(doc) {
            let concrete = path
                .replace("{id}", &key.id)
                .replace("{original_path}", "some/path");
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let (status, body) = call(&sys, base, method.clone(), &concrete, auth, None).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body["error"]["code"] == "route_not_found"),
                "{method} {path} is documented but not served"
            );
        }
    }

    // Real answers validate against the admin document.
    let t = Some(sys.token.as_str());
    let (s, b) = call(
        &sys,
        admin,
        Method::POST,
        "/v1/keys",
        t,
        Some(json!({ "name": "documented" })),
    )
    .await;
    conforms(&admin_doc, "POST", "/v1/keys", s, &b);
    let id = b["id"].as_str().unwrap().to_owned();
    let raw = b["key"].as_str().unwrap().to_owned();
    let (s, b) = call(
        &sys,
        admin,
        Method::POST,
        "/v1/keys",
        t,
        Some(json!({ "name": "" })),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    conforms(&admin_doc, "POST", "/v1/keys", s, &b);
    let (s, b) = call(
        &sys,
        admin,
        Method::GET,
        "/v1/keys?limit=1",
        Some("nope-nope-nope-nope"),
        None,
    )
    .await;
    conforms(&admin_doc, "GET", "/v1/keys", s, &b);
    let (s, b) = call(&sys, admin, Method::GET, "/v1/keys?limit=1", t, None).await;
    conforms(&admin_doc, "GET", "/v1/keys", s, &b);
    let (s, b) = call(&sys, admin, Method::GET, &format!("/v1/keys/{id}"), t, None).await;
    conforms(&admin_doc, "GET", "/v1/keys/{id}", s, &b);
    // Negative control: the schemas do catch a wrong answer.
    let mut wrong = b.clone();
    wrong["read_only"] = json!("no");
    wrong.as_object_mut().unwrap().remove("prefix");
    assert_eq!(
        violations(&admin_doc, "GET", "/v1/keys/{id}", s, &wrong).len(),
        2
    );
    let (s, b) = call(
        &sys,
        admin,
        Method::PATCH,
        &format!("/v1/keys/{id}"),
        t,
        Some(json!({ "read_only": false, "name": "renamed" })),
    )
    .await;
    conforms(&admin_doc, "PATCH", "/v1/keys/{id}", s, &b);
    let (s, b) = call(
        &sys,
        admin,
        Method::GET,
        &format!("/v1/keys/{id}/history"),
        t,
        None,
    )
    .await;
    conforms(&admin_doc, "GET", "/v1/keys/{id}/history", s, &b);
    let (s, b) = call(&sys, admin, Method::GET, "/v1/events?limit=5", t, None).await;
    conforms(&admin_doc, "GET", "/v1/events", s, &b);
    let (s, b) = call(&sys, admin, Method::GET, "/v1/status", t, None).await;
    conforms(&admin_doc, "GET", "/v1/status", s, &b);
    for path in ["/healthz", "/readyz"] {
        let (s, b) = call(&sys, admin, Method::GET, path, None, None).await;
        conforms(&admin_doc, "GET", path, s, &b);
    }

    // And against the node's.
    sys.wait_applied(b["applied_seq"].as_u64().unwrap()).await;
    let http = &sys.http;
    let verify = |key: String, method: &'static str| async move {
        let r = http
            .get(format!("{node}/v1/verify"))
            .header("x-api-key", key)
            .header("x-forwarded-method", method)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let (s, b) = verify(raw.clone(), "POST").await;
    assert_eq!(s, StatusCode::OK);
    conforms(&node_doc, "GET", "/v1/verify", s, &b);
    let (s, b) = verify(raw[..39].to_owned(), "GET").await;
    conforms(&node_doc, "GET", "/v1/verify", s, &b);
    let (s, b) = verify(key.key.clone(), "GET").await;
    conforms(&node_doc, "GET", "/v1/verify", s, &b);
    for path in ["/healthz", "/readyz", "/v1/status"] {
        let (s, b) = call(&sys, node, Method::GET, path, None, None).await;
        conforms(&node_doc, "GET", path, s, &b);
    }
    let (s, b) = call(&sys, node, Method::POST, "/example/items", Some(&raw), None).await;
    assert_eq!(s, StatusCode::CREATED);
    conforms(&node_doc, "POST", "/example/items", s, &b);
    let (s, b) = call(&sys, node, Method::GET, "/example/items", None, None).await;
    conforms(&node_doc, "GET", "/example/items", s, &b);

    let (s, b) = call(
        &sys,
        admin,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        t,
        None,
    )
    .await;
    conforms(&admin_doc, "DELETE", "/v1/keys/{id}", s, &b);
    let (s, b) = call(&sys, admin, Method::GET, &format!("/v1/keys/{id}"), t, None).await;
    conforms(&admin_doc, "GET", "/v1/keys/{id}", s, &b);
}
