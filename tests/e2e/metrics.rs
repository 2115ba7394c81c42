//! `/metrics` on nodes and admin: Prometheus text with the series operators scrape.

use keyledger_tests::System;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn scrape(sys: &System, base: &str) -> String {
    let r = sys
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    r.text().await.unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_admin_serve_the_series_operators_need() {
    let sys = System::with_nodes(1).await.unwrap();
    let reader = sys.create_key("reader", true).await;
    let off = sys.create_key("off", false).await;
    let (status, body) = sys.update_key(&off.id, json!({ "enabled": false })).await;
    assert_eq!(status, StatusCode::OK);
    sys.wait_applied(body["seq"].as_u64().unwrap()).await;

    assert_eq!(sys.verify(0, &reader.key, "GET").await, StatusCode::OK);
    assert_eq!(sys.verify(0, &reader.key, "GET").await, StatusCode::OK);
    assert_eq!(
        sys.verify(0, &reader.key, "POST").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sys.verify(0, &off.key, "GET").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sys.verify(0, &reader.key[..39], "GET").await,
        StatusCode::UNAUTHORIZED
    );
    let never = keyledger_events::ApiKey::generate().unwrap();
    assert_eq!(
        sys.verify(0, never.expose_secret(), "GET").await,
        StatusCode::UNAUTHORIZED
    );

    let node = &sys.nodes[0].url;
    let text = scrape(&sys, node).await;
    let outcome = |o: &str| {
        sample(
            &text,
            &format!(r#"keyledger_validations_total{{service="node",outcome="{o}"}}"#),
        )
    };
    assert_eq!(outcome("ok"), Some(2.0), "{text}");
    assert_eq!(outcome("read_only_denied"), Some(1.0));
    assert_eq!(outcome("disabled"), Some(1.0));
    assert_eq!(outcome("malformed"), Some(1.0));
    assert_eq!(outcome("unknown"), Some(1.0));
    assert_eq!(
        outcome("stale"),
        Some(0.0),
        "every outcome is there from the start"
    );
    assert_eq!(
        sample(
            &text,
            r#"keyledger_validation_duration_seconds_count{service="node"}"#
        ),
        Some(6.0)
    );
    let applied = keyledger_tests::applied_seq(&sys.http, node).await;
    assert_eq!(
        sample(&text, r#"keyledger_applied_seq{service="node"}"#),
        Some(f64::from(u32::try_from(applied).unwrap()))
    );
    assert!(sample(&text, r#"keyledger_stream_lag{service="node"}"#).is_some());
    assert!(sample(&text, r#"keyledger_events_applied_total{service="node"}"#).unwrap() >= 4.0);
    assert_eq!(
        sample(
            &text,
            r#"keyledger_untrusted_messages_total{service="node"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"keyledger_ready{service="node"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"keyledger_http_requests_total{service="node",route="/v1/verify",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
    // Scraping twice does not count applied events twice.
    let again = scrape(&sys, node).await;
    assert_eq!(
        sample(&again, r#"keyledger_events_applied_total{service="node"}"#),
        sample(&text, r#"keyledger_events_applied_total{service="node"}"#)
    );

    // Admin: appends and the conflicts two admin processes cause each other.
    let second = sys.start_admin("KEYLEDGER").await.unwrap();
    let target = sys.create_key("contended", false).await;
    let urls = [sys.admin.url.clone(), second.url.clone()];
    let mut conflicts = 0.0;
    for round in 0..20 {
        let mut calls = Vec::new();
        for i in 0..10 {
            let url = format!("{}/v1/keys/{}", urls[i % 2], target.id);
            let req = sys
                .http
                .request(Method::PATCH, url)
                .bearer_auth(&sys.token)
                .json(&json!({ "name": format!("round {round} writer {i}") }));
            calls.push(tokio::spawn(req.send()));
        }
        for c in calls {
            let r = c.await.unwrap().unwrap();
            assert!(
                r.status().is_success() || r.status() == StatusCode::CONFLICT,
                "{}",
                r.status()
            );
        }
        conflicts = 0.0;
        for url in &urls {
            let text = scrape(&sys, url).await;
            conflicts += sample(
                &text,
                r#"keyledger_append_conflicts_total{service="admin"}"#,
            )
            .unwrap();
        }
        if conflicts > 0.0 {
            break;
        }
    }
    assert!(
        conflicts > 0.0,
        "20 rounds of races and no conflict counted"
    );
    let text = scrape(&sys, &sys.admin.url).await;
    assert!(
        sample(&text, r#"keyledger_appends_total{service="admin"}"#).unwrap() >= 4.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"keyledger_ready{service="admin"}"#),
        Some(1.0)
    );
    assert!(sample(&text, r#"keyledger_stream_lag{service="admin"}"#).is_some());
    assert!(
        sample(
            &text,
            r#"keyledger_http_requests_total{service="admin",route="/v1/keys",status="201"}"#
        )
        .is_some(),
        "{text}"
    );
    // Nothing secret, nothing named: counts and sequences only.
    for t in [&text, &scrape(&sys, node).await] {
        assert!(!t.contains(&reader.key[8..]) && !t.contains(&reader.prefix));
        assert!(!t.contains("reader") && !t.contains(&reader.id));
    }
}
