//! Carrying out a command: decide on the catalogue's state, append with the
//! stream's expected last sequence, and on a lost race decide again.

use std::time::Duration;

use keyledger_eventlog::AppendError;
use keyledger_events::{Command, Commit, Event, EventId, KeyError, KeyId, decide};
use keyledger_projections::Projection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ApiError;
use crate::request::RequestContext;
use crate::service::AppState;

/// How often a command is decided again after losing the race for the stream.
const ATTEMPTS: usize = 8;

/// What a command appended.
pub(crate) struct Appended {
    /// Stream sequence of the commit, or of the key's last commit when the
    /// command changed nothing.
    pub(crate) seq: u64,
}

/// Runs `make` (which builds the command from the current catalogue, e.g. to
/// pick a prefix that is free) and appends what it decides.
pub(crate) async fn execute(
    state: &AppState,
    key_id: KeyId,
    ctx: &RequestContext,
    mut make: impl FnMut(&AppState) -> Result<Command, ApiError>,
) -> Result<Appended, ApiError> {
    if !state.feed.borrow().caught_up {
        return Err(ApiError::Unavailable(
            "still replaying the event stream; retry shortly".into(),
        ));
    }
    // One command at a time per process; races with other processes are
    // settled by the stream's expected last sequence.
    let _turn = state.append_turn.lock().await;
    let mut caught_up = false;
    for attempt in 0..ATTEMPTS {
        let position = state.catalogue.position();
        let key_state = state
            .catalogue
            .state(&key_id)
            .map_err(ApiError::KeyStateUnknown)?;
        let command = make(state)?;
        let changes = match decide(&key_state, &command) {
            Ok(changes) => changes,
            // "No such key" may only mean that this view is behind: another
            // admin may have just created it. Never answer 404 on a stale view.
            Err(KeyError::NotFound) if !caught_up => {
                catch_up(state).await?;
                caught_up = true;
                continue;
            }
            Err(KeyError::NotFound) => return Err(ApiError::KeyNotFound(Some(key_id))),
            Err(KeyError::AlreadyExists) => return Err(ApiError::Conflict),
        };
        if changes.is_empty() {
            let seq = state.catalogue.get(&key_id).map_or(position, |v| v.version);
            return Ok(Appended { seq });
        }
        let at = now();
        let events = changes
            .into_iter()
            .map(|change| Event {
                event_id: EventId::from_uuid(Uuid::now_v7()),
                key_id,
                at,
                actor: ctx.actor.clone(),
                request_id: ctx.request_id.clone(),
                change,
            })
            .collect();
        let commit = Commit::new(events).map_err(|e| {
            tracing::error!(error = %e, "built an invalid commit");
            ApiError::Internal
        })?;
        let msg_id = commit.id().to_string();
        match state
            .log
            .append(
                &key_id.to_string(),
                position,
                &msg_id,
                commit.encode().into(),
            )
            .await
        {
            Ok(seq) => {
                // The stream's last sequence was `position`, so this commit
                // directly follows what the catalogue holds.
                state.catalogue.apply(seq, &commit);
                let kinds: Vec<&str> = commit
                    .events()
                    .iter()
                    .map(|e| e.change.type_name())
                    .collect();
                tracing::info!(%key_id, seq, events = ?kinds, actor = ctx.actor.label(), "appended");
                return Ok(Appended { seq });
            }
            Err(AppendError::Conflict { expected }) => {
                tracing::info!(%key_id, expected, attempt, "lost the race for the stream; deciding again");
                catch_up(state).await?;
            }
            Err(AppendError::Unavailable(reason)) => {
                tracing::error!(%key_id, %reason, "append not confirmed");
                return Err(ApiError::Unavailable(
                    "the event log did not confirm the change; check the key before retrying"
                        .into(),
                ));
            }
            Err(AppendError::Refused(reason)) => {
                tracing::error!(%key_id, %reason, "append refused");
                return Err(ApiError::Unavailable(
                    "the event log refused the change".into(),
                ));
            }
        }
    }
    Err(ApiError::Conflict)
}

/// Waits (bounded) until the catalogue holds everything up to the stream's head.
pub(crate) async fn catch_up(state: &AppState) -> Result<(), ApiError> {
    let head = state.log.head().await.map_err(|e| {
        tracing::error!(error = %e, "cannot read the stream head");
        ApiError::Unavailable("the event log is unavailable".into())
    })?;
    let mut feed = state.feed.clone();
    let wait = async {
        while state.catalogue.position() < head {
            if feed.changed().await.is_err() {
                break;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .is_err()
    {
        tracing::warn!(
            head,
            position = state.catalogue.position(),
            "catalogue did not catch up in time"
        );
    }
    Ok(())
}

/// Now, to the microsecond (the precision events keep).
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}
