//! Measures how long after a DELETE's acknowledgement both API nodes reject
//! the key, on a real nats-server with the real admin service and two nodes.
//!
//! Baseline, measured in the same run: the bus floor, i.e. a plain JetStream
//! publish's acknowledgement to its delivery on another connection.
//!
//! Usage: `revocation-bench [TRIALS]` (default 300). Build with `--release`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use keyledger_projections::{Access, Denial};
use keyledger_tests::{Summary, System};
use reqwest::StatusCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300);
    let sys = System::start().await?;
    println!(
        "revocation bench: {trials} trials, nats-server on {}, 1 admin, 2 nodes",
        sys.nats.url()
    );

    let floor = bus_floor(&sys.nats.url(), trials).await?;
    println!("bus floor (JetStream ack -> delivery on another connection): {floor}");

    let mut delete = Vec::with_capacity(trials);
    let mut disable = Vec::with_capacity(trials);
    let mut delete_sent = Vec::with_capacity(trials);
    let mut round_trip = Vec::with_capacity(trials);
    for i in 0..trials {
        let t = revoke(&sys, i, Revocation::Delete).await?;
        delete.push(t.after_ack);
        delete_sent.push(t.after_send);
        round_trip.push(t.round_trip);
        disable.push(revoke(&sys, i, Revocation::Disable).await?.after_ack);
    }
    let delete = Summary::of(&delete);
    let disable = Summary::of(&disable);
    println!("DELETE ack -> both nodes reject:  {delete}");
    println!("disable ack -> both nodes reject: {disable}");
    println!(
        "DELETE sent -> both nodes reject: {}",
        Summary::of(&delete_sent)
    );
    println!(
        "DELETE HTTP round trip:           {}",
        Summary::of(&round_trip)
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "ratio to bus floor (p50/p99): DELETE {:.2}x/{:.2}x, disable {:.2}x/{:.2}x",
        ratio(delete.p50, floor.p50),
        ratio(delete.p99, floor.p99),
        ratio(disable.p50, floor.p50),
        ratio(disable.p99, floor.p99)
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Revocation {
    Delete,
    Disable,
}

/// What one trial measured.
struct Trial {
    /// From the admin's answer to the last node rejecting the key (zero when
    /// both nodes applied the revocation before the answer arrived).
    after_ack: Duration,
    /// From sending the request to the last node rejecting the key.
    after_send: Duration,
    /// The admin request's round trip.
    round_trip: Duration,
}

/// One trial: create a key, wait until both nodes accept it, revoke it, and
/// time from the admin's answer to both nodes rejecting it.
async fn revoke(sys: &System, i: usize, how: Revocation) -> anyhow::Result<Trial> {
    let key = sys.create_key(&format!("bench {i}"), false).await;
    for node in &sys.nodes {
        let mut feed = node.node.feed();
        feed.wait_for(|s| s.position >= key.seq).await?;
        if node.node.table().validate(&key.key, Access::Read).is_err() {
            bail!("node did not accept a fresh key");
        }
    }
    let sent = Instant::now();
    let (status, body) = match how {
        Revocation::Delete => sys.remove_key(&key.id).await,
        Revocation::Disable => {
            sys.update_key(&key.id, serde_json::json!({ "enabled": false }))
                .await
        }
    };
    let acked = Instant::now();
    if status != StatusCode::OK {
        bail!("revocation failed: {status} {body}");
    }
    let seq = body["seq"].as_u64().context("seq")?;
    let waits = sys.nodes.iter().map(|node| {
        let mut feed = node.node.feed();
        let table = node.node.table();
        let key = key.key.clone();
        async move {
            feed.wait_for(|s| s.position >= seq).await?;
            let denied = table.validate(&key, Access::Read);
            let at = Instant::now();
            match denied {
                Err(Denial::Unknown | Denial::Disabled) => Ok(at),
                other => bail!("node still accepts the key after applying seq {seq}: {other:?}"),
            }
        }
    });
    let times = futures::future::try_join_all(waits).await?;
    let last = times.into_iter().max().context("no nodes")?;
    Ok(Trial {
        after_ack: last.saturating_duration_since(acked),
        after_send: last.saturating_duration_since(sent),
        round_trip: acked.saturating_duration_since(sent),
    })
}

/// JetStream publish ack -> delivery to an ordered consumer on a second connection.
async fn bus_floor(url: &str, trials: usize) -> anyhow::Result<Summary> {
    use async_nats::jetstream::{self, consumer::push::OrderedConfig, stream};
    let publisher = jetstream::new(async_nats::connect(url).await?);
    let subscriber_client = async_nats::connect(url).await?;
    let subscriber = jetstream::new(subscriber_client.clone());
    publisher
        .create_stream(stream::Config {
            name: "FLOOR".into(),
            subjects: vec!["floor.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer = subscriber
        .get_stream("FLOOR")
        .await?
        .create_consumer(OrderedConfig {
            deliver_subject: subscriber_client.new_inbox(),
            filter_subject: "floor.>".into(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut samples = Vec::with_capacity(trials);
    for i in 0..trials {
        let ack = publisher
            .publish(format!("floor.{i}"), "x".into())
            .await?
            .await?;
        let acked = Instant::now();
        loop {
            let m = messages.next().await.context("consumer ended")??;
            if m.info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence
                == ack.sequence
            {
                break;
            }
        }
        samples.push(acked.elapsed());
    }
    Ok(Summary::of(&samples))
}
