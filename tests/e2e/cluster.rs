//! The compose topology on loopback: a 3-node NATS cluster from
//! `deploy/nats/nats.conf`, admin with the stream at 3 replicas, two nodes on
//! different members; then one member dies and the ledger goes on.

use std::time::Duration;

use keyledger_admin::{AdminConfig, AdminToken};
use keyledger_eventlog::{FeedOptions, StreamOptions};
use keyledger_events::SigningKey;
use keyledger_tests::{
    NatsCluster, RunningAdmin, RunningNode, bootstrap_admin_key, eventually, verify_at,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_with_replicated_stream_enforces_revocations_and_survives_a_member() {
    let mut cluster = NatsCluster::start().unwrap();
    let signing = SigningKey::generate().unwrap();
    let bootstrap = "cluster-bootstrap-token-0123456789";
    let admin = RunningAdmin::start_config(
        &cluster.url(),
        "KEYLEDGER",
        AdminConfig {
            token: AdminToken::new(bootstrap).unwrap(),
            stream: StreamOptions { replicas: 3 },
            feed: FeedOptions::new(signing.public_key()),
            signing: signing.clone(),
            rotate_to: None,
        },
    )
    .await
    .unwrap();
    // Each node talks to its own member: events cross the cluster's routes.
    let mut nodes = Vec::new();
    for member in [1, 2] {
        nodes.push(
            RunningNode::start(
                &cluster.member_url(member),
                "KEYLEDGER",
                signing.public_key(),
            )
            .await
            .unwrap(),
        );
    }
    let http = reqwest::Client::new();
    let admin_key = bootstrap_admin_key(&http, &admin.url, bootstrap)
        .await
        .unwrap();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{}{path}", admin.url))
            .bearer_auth(&admin_key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let all_say = |key: String, want: StatusCode| {
        let (http, nodes) = (&http, &nodes);
        async move {
            eventually(Duration::from_secs(15), || async {
                for node in nodes {
                    if verify_at(http, &node.url, &key, "GET").await != want {
                        return false;
                    }
                }
                true
            })
            .await
        }
    };

    // The stream really is replicated three times.
    let js = async_nats::jetstream::new(async_nats::connect(cluster.member_url(1)).await.unwrap());
    let info = js
        .get_stream("KEYLEDGER")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(
        info.cluster.as_ref().unwrap().replicas.len(),
        2,
        "a leader and two replicas"
    );

    // create -> verify -> disable -> reject.
    let (status, created) = call(
        reqwest::Method::POST,
        "/v1/keys".into(),
        Some(json!({ "name": "clustered" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(all_say(key.clone(), StatusCode::OK).await);
    let (status, body) = call(
        reqwest::Method::PATCH,
        format!("/v1/keys/{id}"),
        Some(json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(all_say(key.clone(), StatusCode::UNAUTHORIZED).await);

    // A member dies (not one a node talks to): with two of three left, the
    // stream keeps its quorum, and admin's writes still reach both nodes.
    cluster.kill(0);
    let enabled = eventually(Duration::from_secs(30), || async {
        let (status, _) = call(
            reqwest::Method::PATCH,
            format!("/v1/keys/{id}"),
            Some(json!({ "enabled": true })),
        )
        .await;
        status == StatusCode::OK
    })
    .await;
    assert!(enabled, "admin could not write with one member down");
    assert!(all_say(key.clone(), StatusCode::OK).await);
    // It comes back and catches up; the ledger never noticed.
    cluster.restart(0).unwrap();
    let (status, body) = call(reqwest::Method::DELETE, format!("/v1/keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(all_say(key, StatusCode::UNAUTHORIZED).await);
}
