//! Connecting, ensuring the stream, appending and reading.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use bytes::Bytes;
use time::OffsetDateTime;
use tracing::Instrument as _;

/// Technical failures talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The first connection failed.
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The stream name is not usable.
    #[error("invalid stream name {0:?}: use letters, digits, '-' and '_'")]
    InvalidStreamName(String),
    /// The stream does not exist (nodes wait for admin to create it).
    #[error("stream {0} does not exist yet")]
    NoStream(String),
    /// The stream exists with subjects that are not keyledger's.
    #[error(
        "stream {name} exists but does not take subjects {subjects}; it is not a keyledger stream"
    )]
    ForeignStream {
        /// The stream.
        name: String,
        /// The subjects keyledger needs.
        subjects: String,
    },
    /// Any other JetStream failure.
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// Why an append did not land.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream moved past the expected sequence: decide again on fresh state.
    #[error("the stream has moved past sequence {expected}")]
    Conflict {
        /// The sequence the append expected to follow.
        expected: u64,
    },
    /// Nothing was sent (not connected): the append certainly did not land.
    #[error("append not sent: {0}")]
    NotSent(String),
    /// The append may or may not have landed and could not be confirmed.
    #[error("append not confirmed: {0}")]
    Unavailable(String),
    /// The server refused the message for another reason.
    #[error("append refused: {0}")]
    Refused(String),
}

/// Stream settings that admin applies when it creates the stream.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Replicas (1 for a single server, 3 for a cluster).
    pub replicas: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// Which stream this is, and how far it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamIdentity {
    /// When the stream was created.
    pub created: OffsetDateTime,
    /// Its last assigned sequence.
    pub head: u64,
}

/// One stored message.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// Subject (`<stream>.keys.<key id>`).
    pub subject: String,
    /// The message's `Nats-Msg-Id`, if any.
    pub msg_id: Option<String>,
    /// Payload bytes.
    pub payload: Bytes,
    /// When the server stored it.
    pub time: OffsetDateTime,
}

/// A handle on keyledger's stream.
#[derive(Clone, Debug)]
pub struct EventLog {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    url: String,
    /// Set by [`EventLog::close`]: the disconnect that follows is ours.
    closing: Arc<AtomicBool>,
}

const MSG_ID: &str = "Nats-Msg-Id";

impl EventLog {
    /// Connects to NATS. Fails with a clear message when the server cannot be reached.
    pub async fn connect(url: &str, stream: &str) -> Result<Self, EventLogError> {
        if stream.is_empty()
            || stream.len() > 64
            || !stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(EventLogError::InvalidStreamName(stream.to_owned()));
        }
        let shown = redact_url(url);
        let closing = Arc::new(AtomicBool::new(false));
        let client = async_nats::ConnectOptions::new()
            .name("keyledger")
            .connection_timeout(Duration::from_secs(5))
            .event_callback({
                let shown = shown.clone();
                let closing = closing.clone();
                move |event| {
                    let shown = shown.clone();
                    let closing = closing.load(Ordering::Relaxed);
                    async move {
                        match event {
                            // Whatever the connection reports while we close it is ours.
                            _ if closing => {
                                tracing::debug!(url = %shown, event = %event, "NATS connection closing");
                            }
                            async_nats::Event::Connected => {
                                tracing::info!(url = %shown, "NATS connected");
                            }
                            async_nats::Event::Disconnected => {
                                tracing::warn!(url = %shown, "NATS disconnected; reconnecting");
                            }
                            async_nats::Event::Closed | async_nats::Event::Draining => {
                                tracing::debug!(url = %shown, event = %event, "NATS connection closing");
                            }
                            other => tracing::warn!(url = %shown, event = %other, "NATS event"),
                        }
                    }
                }
            })
            .connect(server_addrs(url).map_err(|reason| EventLogError::Unreachable {
                url: shown.clone(),
                reason,
            })?)
            .await
            .map_err(|e| EventLogError::Unreachable {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(3));
        Ok(Self {
            client,
            js,
            stream: stream.to_owned(),
            url: shown,
            closing,
        })
    }

    /// Flushes and closes the connection (all clones share it), so that
    /// shutting down is not reported as a lost connection.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        if let Err(e) = self.client.drain().await {
            tracing::debug!(error = %e, "closing the NATS connection");
        }
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The NATS URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The subject a key's events go to.
    pub fn subject(&self, key: &str) -> String {
        format!("{}.keys.{key}", self.stream)
    }

    fn subjects(&self) -> String {
        format!("{}.keys.*", self.stream)
    }

    /// Creates the stream if it does not exist (file storage, deletes and
    /// purges denied, direct gets allowed).
    pub async fn ensure_stream(&self, options: &StreamOptions) -> Result<(), EventLogError> {
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subjects()],
            storage: stream::StorageType::File,
            num_replicas: options.replicas,
            duplicate_window: Duration::from_secs(120),
            max_message_size: 1 << 20,
            allow_direct: true,
            deny_delete: true,
            deny_purge: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        let mut s = self
            .js
            .get_or_create_stream(config)
            .await
            .map_err(|e| EventLogError::JetStream(e.to_string()))?;
        let info = s
            .info()
            .await
            .map_err(|e| EventLogError::JetStream(e.to_string()))?;
        if !info.config.subjects.contains(&self.subjects()) {
            return Err(EventLogError::ForeignStream {
                name: self.stream.clone(),
                subjects: self.subjects(),
            });
        }
        if info.config.num_replicas != options.replicas {
            tracing::warn!(
                stream = %self.stream,
                replicas = info.config.num_replicas,
                wanted = options.replicas,
                "the stream exists with another replica count; leaving it as it is"
            );
        }
        Ok(())
    }

    async fn stream(&self) -> Result<stream::Stream, EventLogError> {
        self.js.get_stream(&self.stream).await.map_err(|e| {
            if let jetstream::context::GetStreamErrorKind::JetStream(err) = e.kind()
                && err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            {
                EventLogError::NoStream(self.stream.clone())
            } else {
                EventLogError::JetStream(e.to_string())
            }
        })
    }

    /// The stream's last assigned sequence (0 when empty).
    pub async fn head(&self) -> Result<u64, EventLogError> {
        Ok(self.identity().await?.head)
    }

    /// When the stream was created, and its head. A different creation time
    /// means the stream was deleted and made again (or restored from elsewhere).
    pub async fn identity(&self) -> Result<StreamIdentity, EventLogError> {
        let mut s = self.stream().await?;
        let info = s
            .info()
            .await
            .map_err(|e| EventLogError::JetStream(e.to_string()))?;
        Ok(StreamIdentity {
            created: info.created,
            head: info.state.last_sequence,
        })
    }

    /// Reads the message at `seq`, or `None` if there is none.
    pub async fn read(&self, seq: u64) -> Result<Option<StoredMessage>, EventLogError> {
        let s = self.stream().await?;
        match s.get_raw_message(seq).await {
            Ok(m) => Ok(Some(StoredMessage {
                seq: m.sequence,
                subject: m.subject.to_string(),
                msg_id: m.headers.get(MSG_ID).map(|v| v.as_str().to_owned()),
                payload: m.payload,
                time: m.time,
            })),
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(e) => Err(EventLogError::JetStream(e.to_string())),
        }
    }

    /// Calls `visit` with every stored message from sequence `start` on, in
    /// order, up to the stream head as it was when the call began; only the
    /// messages of `key`'s subject when one is given. Stops early when
    /// `visit` returns `false`. For export, audit and history: it streams, so
    /// a million messages need no more memory than one.
    pub async fn for_each_message(
        &self,
        start: u64,
        key: Option<&str>,
        mut visit: impl FnMut(StoredMessage) -> bool,
    ) -> Result<(), EventLogError> {
        use futures::StreamExt as _;
        let head = self.head().await?;
        if head < start.max(1) {
            return Ok(());
        }
        let filter_subject = key.map_or_else(|| self.subjects(), |k| self.subject(k));
        let mut messages = self.ordered(start, filter_subject).await?;
        loop {
            // A filtered consumer delivers nothing at all when the key has no
            // message: do not wait for one forever.
            let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
            let item = match next {
                Ok(Some(item)) => item,
                Ok(None) => return Ok(()),
                Err(_) if key.is_some() => return Ok(()),
                Err(_) => {
                    return Err(EventLogError::JetStream(
                        "no message within 5 s while reading the stream".into(),
                    ));
                }
            };
            let message = item.map_err(|e| EventLogError::JetStream(e.to_string()))?;
            let info = message
                .info()
                .map_err(|e| EventLogError::JetStream(e.to_string()))?;
            let (seq, pending, time) = (info.stream_sequence, info.pending, info.published);
            if seq > head {
                return Ok(());
            }
            let stored = StoredMessage {
                seq,
                subject: message.subject.to_string(),
                msg_id: message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(MSG_ID))
                    .map(|v| v.as_str().to_owned()),
                payload: message.payload.clone(),
                time,
            };
            if !visit(stored) || seq >= head || pending == 0 {
                return Ok(());
            }
        }
    }

    /// Appends `payload` to the key's subject, only if the stream's last
    /// sequence is still `expected_last_seq`. Returns the new sequence.
    ///
    /// `msg_id` identifies this payload (keyledger uses the commit id): a
    /// retry after a lost acknowledgement recognises its own stored message by it.
    pub async fn append(
        &self,
        key: &str,
        expected_last_seq: u64,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<u64, AppendError> {
        if !self.is_connected() {
            // Nothing was sent, so nothing can have landed: fail fast and unambiguously.
            return Err(AppendError::NotSent(format!(
                "not connected to NATS at {}",
                self.url
            )));
        }
        let subject = self.subject(key);
        let span = tracing::info_span!(
            "append",
            otel.name = "append",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = %subject,
            key_id = key,
            expected_last_seq,
            seq = tracing::field::Empty,
        );
        let mut headers = async_nats::HeaderMap::new();
        crate::trace_context::inject(&span, &mut headers);
        let outcome = self
            .append_attempts(&subject, expected_last_seq, msg_id, &payload, &headers)
            .instrument(span.clone())
            .await;
        if let Ok(seq) = outcome {
            span.record("seq", seq);
        }
        outcome
    }

    async fn append_attempts(
        &self,
        subject: &str,
        expected_last_seq: u64,
        msg_id: &str,
        payload: &Bytes,
        headers: &async_nats::HeaderMap,
    ) -> Result<u64, AppendError> {
        let mut last_error = String::new();
        for attempt in 0..2 {
            let message = PublishMessage::build()
                .headers(headers.clone())
                .payload(payload.clone())
                .message_id(msg_id)
                .expected_last_sequence(expected_last_seq);
            let outcome = match self.js.send_publish(subject.to_owned(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    // Either someone else appended, or an earlier attempt of
                    // ours was stored (2.12+ checks the sequence before dedup).
                    return match self.read(expected_last_seq + 1).await {
                        Ok(Some(m)) if m.msg_id.as_deref() == Some(msg_id) => Ok(m.seq),
                        Ok(_) => Err(AppendError::Conflict {
                            expected: expected_last_seq,
                        }),
                        Err(e) => Err(AppendError::Unavailable(e.to_string())),
                    };
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        PublishErrorKind::TimedOut
                            | PublishErrorKind::BrokenPipe
                            | PublishErrorKind::Other
                    ) && attempt < 1 =>
                {
                    tracing::warn!(attempt, error = %e, "append not acknowledged; retrying");
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(AppendError::Refused(e.to_string()));
                }
                Err(e) => {
                    last_error = e.to_string();
                    break;
                }
            }
        }
        // Not acknowledged: it may still have landed.
        match self.read(expected_last_seq + 1).await {
            Ok(Some(m)) if m.msg_id.as_deref() == Some(msg_id) => Ok(m.seq),
            Ok(Some(_)) => Err(AppendError::Conflict {
                expected: expected_last_seq,
            }),
            _ => Err(AppendError::Unavailable(last_error)),
        }
    }

    /// An ordered push consumer over the stream from `start_seq` on.
    pub(crate) async fn subscribe(
        &self,
        start_seq: u64,
    ) -> Result<jetstream::consumer::push::Ordered, EventLogError> {
        self.ordered(start_seq, self.subjects()).await
    }

    /// An ordered push consumer over `filter_subject` from `start_seq` on.
    async fn ordered(
        &self,
        start_seq: u64,
        filter_subject: String,
    ) -> Result<jetstream::consumer::push::Ordered, EventLogError> {
        use jetstream::consumer::{DeliverPolicy, push::OrderedConfig};
        let s = self.stream().await?;
        let deliver_policy = if start_seq <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: start_seq,
            }
        };
        let consumer = s
            .create_consumer(OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| EventLogError::JetStream(e.to_string()))?;
        consumer
            .messages()
            .await
            .map_err(|e| EventLogError::JetStream(e.to_string()))
    }
}

/// Drops user:password from a URL before it is shown.
/// A NATS URL, or a comma-separated list of them (the members of a
/// cluster), without credentials.
fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            match (one.find("://"), one.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}://***@{}", &one[..scheme], &one[at + 1..])
                }
                _ => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The servers a URL names: one, or a comma-separated list (a cluster's members).
fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|addrs| {
            if addrs.is_empty() {
                Err("no server URL given".to_owned())
            } else {
                Ok(addrs)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(redact_url("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("nats://u:p@a:4222, nats://b:4222"),
            "nats://***@a:4222,nats://b:4222"
        );
        assert_eq!(
            super::server_addrs("nats://a:4222,nats://b:4223")
                .unwrap()
                .len(),
            2
        );
        assert!(super::server_addrs(" , ").is_err());
    }
}
