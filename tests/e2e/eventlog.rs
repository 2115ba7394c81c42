//! The JetStream adapter against a real nats-server.

use keyledger_eventlog::{AppendError, EventLog, StreamOptions};
use keyledger_tests::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_serialised_by_the_expected_stream_sequence() {
    let nats = NatsServer::start().unwrap();
    let log = EventLog::connect(&nats.url(), "T").await.unwrap();
    log.ensure_stream(&StreamOptions::default()).await.unwrap();
    assert_eq!(log.head().await.unwrap(), 0);
    // Expected 0 means "only if the stream is empty".
    assert_eq!(log.append("a", 0, "m1", "one".into()).await.unwrap(), 1);
    // A different message expecting 0 loses.
    assert!(matches!(
        log.append("b", 0, "m2", "two".into()).await,
        Err(AppendError::Conflict { expected: 0 })
    ));
    // Different subjects share one order: the per-stream check, not per-subject.
    assert_eq!(log.append("b", 1, "m3", "two".into()).await.unwrap(), 2);
    assert!(matches!(
        log.append("a", 1, "m4", "x".into()).await,
        Err(AppendError::Conflict { .. })
    ));
    assert_eq!(log.head().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_that_was_stored_is_recognised_as_ours() {
    let nats = NatsServer::start().unwrap();
    let log = EventLog::connect(&nats.url(), "T").await.unwrap();
    log.ensure_stream(&StreamOptions::default()).await.unwrap();
    assert_eq!(log.append("a", 0, "cmd-1", "one".into()).await.unwrap(), 1);
    // The same message again, as a retry after a lost ack would send it:
    // nats-server 2.12+ answers WrongLastSequence; the adapter finds its own
    // Nats-Msg-Id at the next sequence and reports success, without a second copy.
    assert_eq!(log.append("a", 0, "cmd-1", "one".into()).await.unwrap(), 1);
    assert_eq!(log.head().await.unwrap(), 1);
    let stored = log.read(1).await.unwrap().unwrap();
    assert_eq!(stored.msg_id.as_deref(), Some("cmd-1"));
    assert_eq!(stored.subject, "T.keys.a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_durable_and_refuses_deletes() {
    let mut nats = NatsServer::start().unwrap();
    let url = nats.url();
    {
        let log = EventLog::connect(&url, "T").await.unwrap();
        log.ensure_stream(&StreamOptions::default()).await.unwrap();
        log.append("a", 0, "m1", "one".into()).await.unwrap();
    }
    nats.restart().unwrap();
    let log = EventLog::connect(&url, "T").await.unwrap();
    assert_eq!(log.head().await.unwrap(), 1);
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("T").await.unwrap();
    assert!(
        stream.delete_message(1).await.is_err(),
        "deletes must be denied"
    );
    assert!(log.read(1).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named_in_the_error() {
    let err = EventLog::connect("nats://127.0.0.1:1", "T")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot reach NATS at nats://127.0.0.1:1"),
        "{err}"
    );
    let err = EventLog::connect("nats://127.0.0.1:1", "bad.name")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid stream name"), "{err}");
}
