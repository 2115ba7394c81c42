//! History for admins: a key's timeline, and the stream page by page.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use keyledger_events::{Commit, EventHash, ExportLine, KeyState};
use keyledger_projections::HistoryEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ApiError;
use crate::execute::catch_up;
use crate::json::QueryParams;
use crate::keys::KeyIdPath;
use crate::openapi::ErrorBody;
use crate::service::AppState;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// A key's history.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyHistory {
    key_id: keyledger_events::KeyId,
    removed: bool,
    history: Vec<HistoryEntry>,
}

fn unavailable(e: &keyledger_eventlog::EventLogError) -> ApiError {
    tracing::error!(error = %e, "cannot read the stream");
    ApiError::Unavailable("the event log is unavailable".into())
}

/// `GET /v1/keys/{id}/history`: every event about the key, in stream order,
/// removed keys included. Messages this service did not trust are listed as
/// `Untrusted`, with the reason.
#[utoipa::path(get, path = "/v1/keys/{id}/history", tag = "audit", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The key's id (removed keys too)")),
    responses(
        (status = 200, description = "Every event about the key, in stream order", body = KeyHistory),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub(crate) async fn key_history(
    State(state): State<Arc<AppState>>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<impl Serialize>, ApiError> {
    let mut known = state.catalogue.state(&id).unwrap_or(KeyState::Removed);
    if known == KeyState::Absent {
        catch_up(&state).await?;
        known = state.catalogue.state(&id).unwrap_or(KeyState::Removed);
        if known == KeyState::Absent {
            return Err(ApiError::KeyNotFound(Some(id)));
        }
    }
    let mut history = Vec::new();
    state
        .log
        .for_each_message(1, Some(&id.to_string()), |m| {
            if let Some(reason) = state.catalogue.untrusted_message(m.seq) {
                history.push(HistoryEntry::untrusted(m.seq, m.time, id, &reason));
                return true;
            }
            let values = serde_json::from_slice::<Value>(&m.payload)
                .ok()
                .and_then(|v| v.get("events").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            let hashes: Vec<Option<EventHash>> = values
                .iter()
                .map(|v| v["hash"].as_str().and_then(EventHash::from_hex))
                .collect();
            match Commit::from_values(values) {
                Ok(commit) => history.extend(
                    commit
                        .events()
                        .iter()
                        .zip(hashes)
                        .map(|(e, h)| HistoryEntry::of_event(m.seq, m.time, e, h)),
                ),
                Err(e) => history.push(HistoryEntry::untrusted(
                    m.seq,
                    m.time,
                    id,
                    &format!("cannot read: {e}"),
                )),
            }
            true
        })
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(KeyHistory {
        key_id: id,
        removed: known == KeyState::Removed,
        history,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsParams {
    /// First stream sequence (default 1).
    #[param(value_type = Option<u64>)]
    since: Option<String>,
    /// Messages at most, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

/// A stored message as the export writes it, and why it was not trusted.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StoredLine {
    #[serde(flatten)]
    line: ExportLine,
    #[serde(skip_serializing_if = "Option::is_none")]
    untrusted: Option<String>,
}

/// A page of the stream.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventsPage {
    events: Vec<StoredLine>,
    /// Pass as `since` for the next page, or to poll for what comes next.
    next_since: u64,
    /// Whether the stream held more than this page when it was read.
    more: bool,
}

fn number(raw: Option<&str>, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    if name == "limit" {
                        "invalid_limit"
                    } else {
                        "invalid_since"
                    },
                    format!("{name} must be a whole number from 1 to {max}"),
                )
            }),
    }
}

/// `GET /v1/events?since=SEQ&limit=N`: the stored messages from `since` on,
/// as `keyledger audit export` writes them (so a page can be verified).
#[utoipa::path(get, path = "/v1/events", tag = "audit", security(("admin_key" = [])),
    params(EventsParams),
    responses(
        (status = 200, description = "Stored messages from `since` on", body = EventsPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
    ))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    QueryParams(params): QueryParams<EventsParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let since = number(params.since.as_deref(), "since", 1, u64::MAX)?;
    let limit = number(params.limit.as_deref(), "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let head = state.log.head().await.map_err(|e| unavailable(&e))?;
    let mut events = Vec::new();
    state
        .log
        .for_each_message(since, None, |m| {
            events.push(StoredLine {
                untrusted: state.catalogue.untrusted_message(m.seq),
                line: ExportLine::new(m.seq, m.time, m.subject, &m.payload),
            });
            u64::try_from(events.len()).unwrap_or(u64::MAX) < limit
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let next_since = events.last().map_or(since, |e| e.line.seq + 1);
    let more = next_since <= head;
    Ok(Json(EventsPage {
        events,
        next_since,
        more,
    }))
}
