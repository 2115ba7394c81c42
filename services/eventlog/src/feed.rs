//! Feeding a projection: replay from where it stands, then follow the tail.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use keyledger_events::{Chain, Commit, KeyId, PublicKey};
use keyledger_projections::Projection;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{EventLog, EventLogError};

/// How often a following feed checks that the stream is still the one it
/// replayed (not deleted and made again, not restored to an older point).
const IDENTITY_CHECK: Duration = Duration::from_secs(2);

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

/// The chain a feed verifies messages against, shared with the admin
/// service's appends (which move it past their own messages).
pub type SharedChain = Arc<Mutex<Chain>>;

/// Locks a shared chain (a panic elsewhere does not make it unusable: the
/// chain is only ever changed whole).
pub fn lock_chain(chain: &SharedChain) -> MutexGuard<'_, Chain> {
    chain
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The chain's end and its alarms, as `/v1/status` reports them.
pub fn chain_status(chain: &SharedChain) -> serde_json::Value {
    let chain = lock_chain(chain);
    let (refused, last) = chain.refused();
    serde_json::json!({
        "position": chain.position(),
        "tip": chain.tip(),
        "trusted_events": chain.trusted_events(),
        "signer": chain.signer(),
        "untrusted_messages": refused,
        "last_untrusted": last.map(|(seq, reason)| serde_json::json!({ "seq": seq, "reason": reason })),
    })
}

/// What the feed trusts, and operator decisions it must honour.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// The public key of the first signer: trust starts here and follows the
    /// chain's rotation announcements.
    pub trust: PublicKey,
    /// Sequences of messages an operator has inspected and acknowledged as
    /// untrusted garbage: they are passed over (with a warning) instead of
    /// making keys fail closed. Trusted, decodable messages are applied as usual.
    pub acknowledged: BTreeSet<u64>,
}

impl FeedOptions {
    /// Trusts `anchor` as the first signer; no acknowledged messages.
    pub fn new(trust: PublicKey) -> Self {
        Self {
            trust,
            acknowledged: BTreeSet::new(),
        }
    }

    /// A fresh chain to verify against.
    pub fn chain(&self) -> SharedChain {
        Arc::new(Mutex::new(Chain::new(self.trust)))
    }
}

/// Replays the stream into `projection` from its position on, then follows
/// it live, forever. Publishes progress on `progress`. Survives NATS outages:
/// it resubscribes from the projection's position with a backoff.
///
/// Every message is checked against `chain` (hash, signature, link) before
/// it is applied. A message that fails, cannot be decoded or does not match
/// its subject is never skipped: the key it concerns (or, if none can be named, every key) is
/// poisoned and fails closed, and the failure is logged as an error. A stream
/// that goes backwards or is replaced seals the projection: every key fails
/// closed until the process is restarted against a stream it can trust.
pub async fn feed<P>(
    log: EventLog,
    projection: Arc<P>,
    chain: SharedChain,
    progress: watch::Sender<FeedState>,
    options: FeedOptions,
) where
    P: Projection + ?Sized + 'static,
{
    let mut backoff = Duration::from_millis(100);
    let mut announced_wait = false;
    let mut seen: Option<OffsetDateTime> = None;
    loop {
        match follow_once(
            &log,
            projection.as_ref(),
            &chain,
            &progress,
            &options,
            &mut seen,
        )
        .await
        {
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

/// Seals the projection if the stream is not the one it has been following.
///
/// `position` must be read before the stream's identity was asked for: the
/// projection may move on (an admin applies its own appends at once) while
/// the answer is on its way.
fn check_identity<P: Projection + ?Sized>(
    projection: &P,
    seen: &mut Option<OffsetDateTime>,
    position: u64,
    created: OffsetDateTime,
    head: u64,
) {
    let reason = match *seen {
        Some(first) if first != created => Some(format!(
            "the stream was replaced (created {first}, now {created}); restart against a trusted stream"
        )),
        _ if head < position => Some(format!(
            "the stream went backwards (head {head} < applied {position}); restart against a trusted stream"
        )),
        _ => None,
    };
    seen.get_or_insert(created);
    if let Some(reason) = reason {
        tracing::error!(%reason, "every key now fails closed");
        projection.seal(&reason);
    }
}

/// Asks for the stream's identity and seals the projection if it is not the
/// stream it has been following, or if that stream was deleted.
async fn check_stream<P: Projection + ?Sized>(
    log: &EventLog,
    projection: &P,
    seen: &mut Option<OffsetDateTime>,
) -> Result<crate::StreamIdentity, EventLogError> {
    let position = projection.position();
    match log.identity().await {
        Ok(identity) => {
            check_identity(projection, seen, position, identity.created, identity.head);
            Ok(identity)
        }
        Err(EventLogError::NoStream(name)) if seen.is_some() => {
            let reason = format!("the stream {name} was deleted; restart against a trusted stream");
            tracing::error!(%reason, "every key now fails closed");
            projection.seal(&reason);
            Err(EventLogError::NoStream(name))
        }
        Err(e) => Err(e),
    }
}

async fn follow_once<P>(
    log: &EventLog,
    projection: &P,
    chain: &SharedChain,
    progress: &watch::Sender<FeedState>,
    options: &FeedOptions,
    seen: &mut Option<OffsetDateTime>,
) -> Result<(), EventLogError>
where
    P: Projection + ?Sized,
{
    let head = check_stream(log, projection, seen).await?.head;
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
    let mut identity_check = tokio::time::interval(IDENTITY_CHECK);
    identity_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let item = tokio::select! {
            item = messages.next() => item,
            _ = identity_check.tick() => {
                // A stream that vanished is reported by check_stream (it
                // seals); a NATS outage shows up on the subscription.
                let _ = check_stream(log, projection, seen).await;
                continue;
            }
        };
        let Some(item) = item else { return Ok(()) };
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
        let span = apply_span(
            progress.borrow().caught_up,
            seq,
            message.subject.as_str(),
            message.headers.as_ref(),
            chain,
        );
        span.in_scope(|| {
            apply(
                projection,
                &mut lock_chain(chain),
                seq,
                message.subject.as_str(),
                &message.payload,
                options,
            );
        });
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
}

/// The span a live message is applied in: it joins the trace of the append
/// that wrote it, whose context travels in the message headers. None while
/// replaying (a restart does not re-enter old traces), for messages without
/// a trace context, and for this process's own appends (already applied).
fn apply_span(
    live: bool,
    seq: u64,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    chain: &SharedChain,
) -> tracing::Span {
    if !live {
        return tracing::Span::none();
    }
    let Some(parent) = crate::trace_context::extract(headers) else {
        return tracing::Span::none();
    };
    if seq <= lock_chain(chain).position() {
        return tracing::Span::none();
    }
    let key_id = subject.rsplit('.').next().unwrap_or_default();
    let span = tracing::info_span!(
        "apply",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = subject,
        seq,
        key_id
    );
    // Fails only without an OpenTelemetry layer, when there is no trace to join.
    let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent);
    span
}

/// Verifies, decodes and applies one stored message, or poisons what it
/// concerns. The caller holds the chain's lock, so that the chain and the
/// projection move together.
pub(crate) fn apply<P: Projection + ?Sized>(
    projection: &P,
    chain: &mut Chain,
    seq: u64,
    subject: &str,
    payload: &[u8],
    options: &FeedOptions,
) {
    if seq <= chain.position() {
        // This process appended it and applied it already.
        return;
    }
    let subject_key = subject
        .rsplit('.')
        .next()
        .and_then(|t| t.parse::<KeyId>().ok());
    let (keys, reason) = match chain.verify(seq, payload) {
        Ok(verified) => match Commit::from_values(verified.values) {
            Ok(commit) if Some(commit.key_id()) == subject_key => {
                projection.apply(seq, &commit);
                return;
            }
            Ok(commit) => {
                let reason = format!(
                    "event for key {} stored under subject {subject}",
                    commit.key_id()
                );
                let keys: Vec<KeyId> = [Some(commit.key_id()), subject_key]
                    .into_iter()
                    .flatten()
                    .collect();
                (keys, reason)
            }
            // Signed by admin, but of a type or version this build does not know.
            Err(e) => (subject_key.into_iter().collect(), e.to_string()),
        },
        Err(e) => {
            let mut keys: Vec<KeyId> = subject_key.into_iter().collect();
            keys.extend(
                Commit::decode(payload)
                    .ok()
                    .map(|c| c.key_id())
                    .filter(|k| Some(*k) != subject_key),
            );
            tracing::error!(seq, %subject, error = %e, alarm = "untrusted_event",
                "ALARM: a message failed verification and is not applied; was it published around keyledger admin?");
            (keys, format!("untrusted: {e}"))
        }
    };
    if options.acknowledged.contains(&seq) {
        tracing::warn!(seq, %subject, %reason, "untrusted message acknowledged by the operator; passing over it");
        chain.pass(seq);
        projection.acknowledge(seq);
        return;
    }
    if keys.is_empty() {
        tracing::error!(seq, %subject, %reason, "untrusted message that names no key: every key now fails closed \
            (inspect it, then restart with --acknowledge-untrusted {seq} if it is garbage)");
    } else {
        tracing::error!(seq, %subject, ?keys, %reason, "untrusted message: these keys now fail closed \
            (inspect it, then restart with --acknowledge-untrusted {seq} if it is garbage)");
    }
    projection.poison(seq, &keys, &reason);
}
