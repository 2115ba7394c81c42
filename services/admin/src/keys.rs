//! The `/v1/keys` handlers.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use keyledger_events::{Actor, ApiKey, Command, KeyId, KeyName};
use keyledger_projections::KeyView;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiError;
use crate::execute::{catch_up, execute};
use crate::json::{JsonBody, QueryParams};
use crate::openapi::ErrorBody;
use crate::request::RequestContext;
use crate::service::AppState;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// A new key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    /// Display name, 1 to 200 characters.
    name: String,
    /// Read-only (GET, HEAD, OPTIONS). Defaults to true for API keys, false for admin keys.
    read_only: Option<bool>,
    /// An admin key: manages keys through this API, never accepted by nodes.
    admin: Option<bool>,
}

/// Changes to a key: each field given and different becomes its own event.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKey {
    /// New display name.
    name: Option<String>,
    /// New scope.
    read_only: Option<bool>,
    /// Enable or disable.
    enabled: Option<bool>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// A case-insensitive part of the name, or the key's leading characters.
    q: Option<String>,
    /// Keys per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A created key, with its secret: shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Created {
    #[serde(flatten)]
    view: KeyView,
    /// The key itself. Shown this once, never stored.
    key: String,
    /// Stream sequence of the `Created` event.
    seq: u64,
}

/// A key after a change.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Changed {
    #[serde(flatten)]
    view: KeyView,
    /// Stream sequence of the last event this request appended.
    seq: u64,
}

/// A removed key.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RemovedKey {
    id: KeyId,
    removed: bool,
    /// Stream sequence of the `Removed` event.
    seq: u64,
}

/// A page of keys.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Listing {
    keys: Vec<KeyView>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

fn name(state: &AppState, raw: &str) -> Result<KeyName, ApiError> {
    // Names are shown to every admin and kept in the stream for good: a key
    // or the bootstrap token pasted into the name field must not end up there.
    if ApiKey::appears_in(raw) || state.token.appears_in(raw) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "a name must not contain an API key or the bootstrap token",
        ));
    }
    KeyName::parse(raw).map_err(|e| ApiError::unprocessable("invalid_name", e.to_string()))
}

/// The `{id}` of a key route. Anything that is not a key id (including
/// invalid UTF-8) is a 404 that does not echo what was sent.
pub(crate) struct KeyIdPath(pub(crate) KeyId);

impl<S: Send + Sync> FromRequestParts<S> for KeyIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::KeyNotFound(None))?;
        raw.parse()
            .map(KeyIdPath)
            .map_err(|_| ApiError::KeyNotFound(None))
    }
}

#[utoipa::path(post, path = "/v1/keys", tag = "keys", security(("admin_key" = [])),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; the key is in this answer only", body = Created),
        (status = 400, description = "Unreadable body", body = ErrorBody),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
        (status = 403, description = "The credential may not do this", body = ErrorBody),
        (status = 422, description = "Invalid content", body = ErrorBody),
        (status = 503, description = "Replaying, sealed or NATS unreachable", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<impl IntoResponse, ApiError> {
    let name = name(&state, &body.name)?;
    let admin = body.admin.unwrap_or(false);
    // An API key is read-only unless asked otherwise (as in the console); an
    // admin key manages keys unless asked to be read-only.
    let read_only = body.read_only.unwrap_or(!admin);
    let bootstrap = matches!(ctx.actor, Actor::Bootstrap);
    if bootstrap && !admin {
        return Err(ApiError::forbidden(
            "bootstrap_limited",
            "the bootstrap token can only create admin keys (\"admin\": true); use an admin key for API keys",
        ));
    }
    let id = KeyId::from_uuid(Uuid::now_v7());
    let mut secret = None;
    let appended = execute(&state, id, &ctx, |state| {
        // Decided under the chain's lock: two racing bootstrap requests cannot
        // both see "no admin key yet".
        if bootstrap && state.catalogue.has_managing_admin() {
            return Err(ApiError::forbidden(
                "bootstrap_limited",
                "an enabled read-write admin key exists: the bootstrap token can only create admin keys while none does",
            ));
        }
        // Regenerate until the prefix is free among keys that exist.
        let key = loop {
            let key = ApiKey::generate().map_err(|e| {
                tracing::error!(error = %e, "the OS has no randomness to give");
                ApiError::Internal
            })?;
            if !state.catalogue.prefix_taken(&key.prefix()) {
                break key;
            }
            tracing::info!("prefix collision; generating another key");
        };
        let command = Command::Create {
            name: name.clone(),
            prefix: key.prefix(),
            hash: key.hash(),
            read_only,
            admin,
        };
        secret = Some(key);
        Ok(command)
    })
    .await?;
    let (Some(view), Some(key)) = (appended.view, secret) else {
        tracing::error!(key_id = %id, "a create appended no view or no key");
        return Err(ApiError::Internal);
    };
    tracing::info!(key_id = %id, prefix = %view.prefix, admin, "key created");
    let body = Created {
        view,
        key: key.expose_secret().to_owned(),
        seq: appended.seq,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("admin_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of keys in creation order", body = Listing),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<KeyId>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "cursor is not one this API handed out")
        })?),
    };
    if params.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q must be at most 200 characters",
        ));
    }
    let page = state.catalogue.search(params.q.as_deref(), after, limit);
    Ok(Json(Listing {
        keys: page.keys,
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<KeyView>, ApiError> {
    if let Some(view) = state.catalogue.get(&id) {
        return Ok(Json(view));
    }
    // Not here: perhaps only not yet. Catch up with the stream before saying
    // 404; when the stream cannot be asked, say so instead.
    catch_up(&state).await?;
    state
        .catalogue
        .get(&id)
        .map(Json)
        .ok_or(ApiError::KeyNotFound(Some(id)))
}

#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The key's id")),
    request_body = UpdateKey,
    responses(
        (status = 200, description = "The key after the change", body = Changed),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Conflict, or the key is frozen", body = ErrorBody),
        (status = 422, description = "Invalid content", body = ErrorBody),
        (status = 503, description = "Not changed, or not confirmed", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    KeyIdPath(id): KeyIdPath,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Json<impl Serialize>, ApiError> {
    if body.name.is_none() && body.read_only.is_none() && body.enabled.is_none() {
        return Err(ApiError::unprocessable(
            "empty_update",
            "give at least one of name, read_only, enabled",
        ));
    }
    let new_name = body.name.as_deref().map(|n| name(&state, n)).transpose()?;
    let command = Command::Update {
        name: new_name,
        read_only: body.read_only,
        enabled: body.enabled,
    };
    let appended = execute(&state, id, &ctx, |_| Ok(command.clone())).await?;
    let view = appended.view.ok_or(ApiError::KeyNotFound(Some(id)))?;
    Ok(Json(Changed {
        view,
        seq: appended.seq,
    }))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", security(("admin_key" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Removed; its history stays", body = RemovedKey),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    KeyIdPath(id): KeyIdPath,
) -> Result<Json<impl Serialize>, ApiError> {
    let appended = execute(&state, id, &ctx, |_| Ok(Command::Remove)).await?;
    Ok(Json(RemovedKey {
        id,
        removed: true,
        seq: appended.seq,
    }))
}
