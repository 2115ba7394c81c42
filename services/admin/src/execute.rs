//! Carrying out a command: decide on the catalogue's state, append with the
//! stream's expected last sequence, and on a lost race decide again.

use std::time::Duration;

use keyledger_eventlog::{AppendError, lock_chain};
use keyledger_events::{
    Actor, Chain, Command, Commit, Event, EventId, KeyError, KeyId, Signed, SigningKey, decide,
};
use keyledger_projections::{KeyView, Projection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ApiError;
use crate::request::RequestContext;
use crate::service::AppState;

/// How often a command is decided again after losing the race for the stream.
const ATTEMPTS: usize = 8;

/// How long a command waits for its turn to append.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// What a command appended.
pub(crate) struct Appended {
    /// Stream sequence of the commit, or of the key's last commit when the
    /// command changed nothing.
    pub(crate) seq: u64,
    /// The key as this command left it (`None` once removed), whatever other
    /// writers did after.
    pub(crate) view: Option<KeyView>,
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
    if let Some((seq, reason)) = state.catalogue.status().sealed {
        return Err(ApiError::Sealed(format!(
            "message {seq}: {reason}; see /v1/status"
        )));
    }
    // One command at a time per process; races with other processes are
    // settled by the stream's expected last sequence. A turn that does not
    // come (NATS hangs under the writer ahead) is an honest 503: nothing sent.
    let Ok(_turn) = tokio::time::timeout(TURN_WAIT, state.append_turn.lock()).await else {
        return Err(ApiError::Unavailable(
            "another change is still being written (is NATS slow?); nothing was changed".into(),
        ));
    };
    let mut caught_up = false;
    for attempt in 0..ATTEMPTS {
        // Decide and sign under the chain's lock, so that the state decided
        // on, the expected sequence and the chain's tip all belong together.
        let decided = tracing::info_span!("decide", %key_id, attempt).in_scope(|| {
            let chain = lock_chain(&state.chain);
            decide_and_sign(state, &chain, key_id, ctx, &mut make)
        })?;
        let (position, before, commit, signed) = match decided {
            Decided::Sign {
                position,
                before,
                commit,
                signed,
            } => (position, before, commit, signed),
            Decided::Nothing { seq, view } => return Ok(Appended { seq, view }),
            // "No such key" may only mean that this view is behind: another
            // admin may have just created it. Never answer 404 on a stale view.
            Decided::NotFound if !caught_up => {
                catch_up(state).await?;
                caught_up = true;
                continue;
            }
            Decided::NotFound => return Err(ApiError::KeyNotFound(Some(key_id))),
        };
        let msg_id = commit.id().to_string();
        // From here the change may land: the answer must say what became of it.
        ctx.commit_point.reached();
        match state
            .log
            .append(
                &key_id.to_string(),
                position,
                &msg_id,
                signed.bytes.clone().into(),
            )
            .await
        {
            Ok(seq) => {
                // The stream's last sequence was `position`, so this commit
                // directly follows what the catalogue holds. The feed may have
                // seen it already; if not, move chain and catalogue past it now,
                // so that the answer (and e.g. a revoked admin key) holds at once.
                {
                    let mut chain = lock_chain(&state.chain);
                    if chain.position() < seq {
                        chain.accept(seq, &signed);
                        state.catalogue.apply(seq, &commit);
                    }
                }
                let kinds: Vec<&str> = commit
                    .events()
                    .iter()
                    .map(|e| e.change.type_name())
                    .collect();
                tracing::info!(%key_id, seq, events = ?kinds, actor = %ctx.actor.label(), "appended");
                state.metrics.appended();
                return Ok(Appended {
                    seq,
                    view: KeyView::after(before, seq, &commit),
                });
            }
            Err(AppendError::Conflict { expected }) => {
                tracing::info!(%key_id, expected, attempt, "lost the race for the stream; deciding again");
                state.metrics.append_conflicts.inc();
                catch_up(state).await?;
            }
            Err(AppendError::NotSent(reason)) => {
                tracing::error!(%key_id, %reason, "append not sent");
                return Err(ApiError::Unavailable(
                    "the event log is unreachable; nothing was changed".into(),
                ));
            }
            Err(AppendError::Unavailable(reason)) => {
                tracing::error!(%key_id, %reason, "append not confirmed");
                return Err(ApiError::NotConfirmed);
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

enum Decided {
    Sign {
        position: u64,
        before: Option<KeyView>,
        commit: Commit,
        signed: Signed,
    },
    Nothing {
        seq: u64,
        view: Option<KeyView>,
    },
    NotFound,
}

fn decide_and_sign(
    state: &AppState,
    chain: &Chain,
    key_id: KeyId,
    ctx: &RequestContext,
    make: &mut impl FnMut(&AppState) -> Result<Command, ApiError>,
) -> Result<Decided, ApiError> {
    let position = chain.position();
    // The credential was checked when the request arrived; it may have been
    // disabled, removed or made read-only since (by another request, or
    // another admin process whose write this one lost the race to). What it
    // may do is decided on the same state as the change itself.
    if let Actor::AdminKey { key_id: actor, .. } = &ctx.actor
        && !state
            .catalogue
            .get(actor)
            .is_some_and(|v| v.admin && v.enabled && !v.read_only && v.untrusted.is_none())
    {
        tracing::warn!(
            "the admin key was revoked or made read-only while its request was in flight"
        );
        return Err(ApiError::Unauthorized);
    }
    let key_state = state
        .catalogue
        .state(&key_id)
        .map_err(ApiError::KeyStateUnknown)?;
    let command = make(state)?;
    let changes = match decide(&key_state, &command) {
        Ok(changes) => changes,
        Err(KeyError::NotFound) => return Ok(Decided::NotFound),
        Err(KeyError::AlreadyExists) => return Err(ApiError::Conflict),
    };
    let before = state.catalogue.get(&key_id);
    if changes.is_empty() {
        let seq = before.as_ref().map_or(position, |v| v.version);
        return Ok(Decided::Nothing { seq, view: before });
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
            origin: ctx.origin.clone(),
            change,
        })
        .collect();
    let commit = Commit::new(events).map_err(|e| {
        tracing::error!(error = %e, "built an invalid commit");
        ApiError::Internal
    })?;
    let (key, next) = signing_keys(state, chain)?;
    let signed = chain.sign(&commit, key, next).map_err(|e| {
        tracing::error!(error = %e, "cannot sign");
        ApiError::Internal
    })?;
    Ok(Decided::Sign {
        position,
        before,
        commit,
        signed,
    })
}

/// The key that must sign the next event, and the key to rotate to, if this
/// process was asked to rotate and the chain has not rotated yet.
fn signing_keys<'s>(
    state: &'s AppState,
    chain: &Chain,
) -> Result<(&'s SigningKey, Option<&'s SigningKey>), ApiError> {
    let current = chain.signer();
    let rotate_to = state.rotate_to.as_ref();
    if state.signing.public_key() == current {
        Ok((
            &state.signing,
            rotate_to.filter(|r| r.public_key() != current),
        ))
    } else if let Some(next) = rotate_to.filter(|r| r.public_key() == current) {
        Ok((next, None))
    } else {
        tracing::error!(expected = %current, "this admin does not hold the chain's current signing key");
        Err(ApiError::Unavailable(format!(
            "this admin service does not hold the chain's current signing key ({current}); \
             restart it with that key (see --signing-key-file)"
        )))
    }
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
        return Err(ApiError::Unavailable(
            "this service's view is behind the event stream; retry shortly".into(),
        ));
    }
    Ok(())
}

/// Now, to the microsecond (the precision events keep).
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}
