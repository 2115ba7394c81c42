//! Feeding a projection: replay from where it stands, then follow the tail.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use keyledger_events::{Commit, KeyId};
use keyledger_projections::Projection;
use tokio::sync::watch;

use crate::{EventLog, EventLogError};

/// Where a feed stands, published on a watch channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedState {
    /// Last stream sequence applied (or poisoned).
    pub position: u64,
    /// The stream head when the feed started.
    pub head_at_start: u64,
    /// True once everything up to `head_at_start` was applied.
    pub caught_up: bool,
}

/// Replays the stream into `projection` from its position on, then follows
/// it live, forever. Publishes progress on `progress`. Survives NATS outages:
/// it resubscribes from the projection's position with a backoff.
///
/// A message that cannot be decoded or does not match its subject is never
/// skipped: the key it concerns (or, if none can be named, every key) is
/// poisoned and fails closed, and the failure is logged as an error.
pub async fn feed<P>(log: EventLog, projection: Arc<P>, progress: watch::Sender<FeedState>)
where
    P: Projection + ?Sized + 'static,
{
    let mut backoff = Duration::from_millis(100);
    let mut announced_wait = false;
    loop {
        match follow_once(&log, projection.as_ref(), &progress).await {
            Ok(()) => {
                tracing::warn!(stream = %log.stream_name(), "event subscription ended; resubscribing");
            }
            Err(EventLogError::NoStream(name)) => {
                if !announced_wait {
                    tracing::warn!(stream = %name, "stream does not exist yet; waiting for keyledger admin to create it");
                    announced_wait = true;
                }
            }
            Err(e) => tracing::error!(error = %e, "event subscription failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn follow_once<P>(
    log: &EventLog,
    projection: &P,
    progress: &watch::Sender<FeedState>,
) -> Result<(), EventLogError>
where
    P: Projection + ?Sized,
{
    let head = log.head().await?;
    let start = projection.position() + 1;
    progress.send_modify(|s| {
        if !s.caught_up {
            s.head_at_start = head;
            s.position = projection.position();
            s.caught_up = s.position >= head;
            if s.caught_up {
                projection.caught_up();
            }
        }
    });
    if progress.borrow().caught_up {
        tracing::info!(stream = %log.stream_name(), position = projection.position(), "caught up");
    } else {
        tracing::info!(stream = %log.stream_name(), from = start, head, "replaying");
    }
    let mut messages = log.subscribe(start).await?;
    let started = std::time::Instant::now();
    let mut last_report = started;
    while let Some(item) = messages.next().await {
        let message = match item {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "event subscription hiccup");
                continue;
            }
        };
        let Ok(info) = message.info() else {
            tracing::error!(subject = %message.subject, "message without JetStream metadata; ignoring delivery");
            continue;
        };
        let (seq, pending) = (info.stream_sequence, info.pending);
        apply(projection, seq, message.subject.as_str(), &message.payload);
        progress.send_modify(|s| {
            s.position = projection.position();
            if !s.caught_up && (s.position >= s.head_at_start || pending == 0) {
                s.caught_up = true;
                projection.caught_up();
                tracing::info!(
                    position = s.position,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "replay complete; following the stream live"
                );
            }
        });
        if !progress.borrow().caught_up && last_report.elapsed() > Duration::from_secs(2) {
            last_report = std::time::Instant::now();
            tracing::info!(position = seq, head, "replaying…");
        }
    }
    Ok(())
}

/// Decodes and applies one stored message, or poisons what it concerns.
pub(crate) fn apply<P: Projection + ?Sized>(
    projection: &P,
    seq: u64,
    subject: &str,
    payload: &[u8],
) {
    let subject_key = subject
        .rsplit('.')
        .next()
        .and_then(|t| t.parse::<KeyId>().ok());
    match Commit::decode(payload) {
        Ok(commit) if Some(commit.key_id()) == subject_key => {
            projection.apply(seq, &commit);
        }
        Ok(commit) => {
            let reason = format!(
                "event for key {} stored under subject {subject}",
                commit.key_id()
            );
            tracing::error!(seq, %subject, %reason, "untrusted event: the keys involved now fail closed");
            let keys: Vec<KeyId> = [Some(commit.key_id()), subject_key]
                .into_iter()
                .flatten()
                .collect();
            projection.poison(seq, &keys, &reason);
        }
        Err(e) => {
            let reason = e.to_string();
            match subject_key {
                Some(key) => {
                    tracing::error!(seq, %subject, %key, %reason, "cannot decode event: this key now fails closed");
                }
                None => {
                    tracing::error!(seq, %subject, %reason, "cannot decode event and cannot tell its key: every key now fails closed");
                }
            }
            projection.poison(seq, subject_key.as_slice(), &reason);
        }
    }
}
