//! Freshness: a node that cannot confirm it has every change in the stream
//! must not keep answering from what it remembers.
//!
//! A node is told of revocations by the stream alone. Cut off from NATS (a
//! partition, a dead route, a stuck consumer) it would go on accepting a key
//! that admin has since disabled. So, twice a second or so, the node asks the
//! stream for its head and checks that it has applied up to it. When it has
//! not been able to confirm that for `max_staleness`, every key fails closed
//! (503 `stale`) and the node reports itself unready, until it confirms again.
//!
//! ```text
//!   every probe:  t0 = now; head = stream head (bounded wait)
//!                 applied >= head (bounded wait)?  -> confirmed_at = t0
//!                 now - confirmed_at > max_staleness  -> stale (fail closed)
//! ```
//!
//! An acknowledged revocation is at a sequence at or below the head read
//! after its acknowledgement, so a node that is not stale has applied every
//! revocation acknowledged before `now - max_staleness - probe interval`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyledger_eventlog::{EventLog, FeedState};
use keyledger_projections::ValidationTable;
use tokio::sync::watch;

/// How long a node may go without confirming it is up to date, by default.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(5);

/// When the node last confirmed it had applied the stream's head.
#[derive(Debug, Default)]
pub(crate) struct Freshness {
    confirmed: std::sync::Mutex<Option<Instant>>,
    /// The stream head at the last probe that reached the stream.
    head: std::sync::atomic::AtomicU64,
}

impl Freshness {
    fn confirm(&self, at: Instant) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            *confirmed = Some(confirmed.map_or(at, |c| c.max(at)));
        }
    }

    /// The stream head at the last probe that reached the stream, if any did.
    pub(crate) fn head(&self) -> Option<u64> {
        Some(self.head.load(std::sync::atomic::Ordering::Acquire)).filter(|h| *h > 0)
    }

    /// How long ago the node last confirmed it had applied the stream's
    /// head; `None` before the replay is done.
    pub(crate) fn age(&self) -> Option<Duration> {
        let confirmed = (*self.confirmed.lock().ok()?)?;
        Some(Instant::now().saturating_duration_since(confirmed))
    }
}

/// Runs until dropped: probes the stream head and marks `table` stale or
/// fresh.
pub(crate) async fn watchdog(
    log: EventLog,
    table: Arc<ValidationTable>,
    mut feed: watch::Receiver<FeedState>,
    freshness: Arc<Freshness>,
    max_staleness: Duration,
) {
    let probe = (max_staleness / 5).clamp(Duration::from_millis(50), Duration::from_secs(1));
    // Nothing to confirm before the replay is done: the table answers 503 not_ready until then.
    if feed.wait_for(|f| f.caught_up).await.is_err() {
        return;
    }
    freshness.confirm(Instant::now());
    loop {
        let asked = Instant::now();
        if let Ok(Ok(head)) = tokio::time::timeout(probe, log.head()).await {
            freshness
                .head
                .store(head, std::sync::atomic::Ordering::Release);
            let applied = tokio::time::timeout(probe, feed.wait_for(|f| f.position >= head)).await;
            if matches!(applied, Ok(Ok(_))) {
                freshness.confirm(asked);
            }
        }
        let stale = freshness.age().is_some_and(|age| age > max_staleness);
        if stale != table.status().stale {
            table.set_stale(stale);
            if stale {
                tracing::error!(
                    max_staleness_ms = max_staleness.as_millis(),
                    nats_connected = log.is_connected(),
                    "ALARM: cannot confirm this node has every change in the stream; every key fails closed (503 stale) until it has"
                );
            } else {
                tracing::warn!("caught up with the stream again; validating keys");
            }
        }
        tokio::time::sleep(probe).await;
    }
}
