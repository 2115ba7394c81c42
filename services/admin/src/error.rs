//! The HTTP layer's errors: one place that maps them to status codes and
//! stable error codes. Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyledger_events::KeyId;
use serde_json::json;

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no admin credential, or one that is wrong, disabled or removed.
    #[error("missing or invalid admin credential (an enabled admin key, or the bootstrap token)")]
    Unauthorized,
    /// 403: the credential is valid but may not do this.
    #[error("{message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// 404: no such key (`None` when the id was not even a key id; it is not echoed).
    #[error("{}", .0.map_or_else(|| "no such key: that is not a key id".to_owned(), |id| format!("no key with id {id}")))]
    KeyNotFound(Option<KeyId>),
    /// 404: no such route.
    #[error("no such route")]
    RouteNotFound,
    /// 405.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 400: the request cannot be read (bad JSON syntax, bad query).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// 422: the request was read but its content is not acceptable.
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// 413.
    #[error("request body is too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    /// 415.
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 409: lost the race too many times.
    #[error("the key was changed concurrently; retry the request")]
    Conflict,
    /// 409: an event about this key could not be trusted, so it is frozen.
    #[error("this key's history holds an event this service cannot trust; it is frozen: {0}")]
    KeyStateUnknown(String),
    /// 503: the event log cannot be reached, or the service is still replaying.
    /// Nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the service sealed itself (it can no longer check the history
    /// it would build on): nothing can change until an operator acts.
    #[error("this service is sealed and changes nothing: {0}")]
    Sealed(String),
    /// 503: the change was sent but not confirmed: it may have landed.
    #[error(
        "the event log did not confirm the change; it may still land: check the key before retrying"
    )]
    NotConfirmed,
    /// 500: a bug; details are in the log.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Status and stable code.
    pub fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::KeyNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "route_not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Conflict => (StatusCode::CONFLICT, "conflict"),
            Self::KeyStateUnknown(_) => (StatusCode::CONFLICT, "key_state_unknown"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Sealed(_) => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
            Self::NotConfirmed => (StatusCode::SERVICE_UNAVAILABLE, "not_confirmed"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read, so this connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_4xx_or_5xx_and_a_snake_case_code() {
        let all = [
            ApiError::Unauthorized,
            ApiError::forbidden("bootstrap_limited", "m"),
            ApiError::KeyNotFound(None),
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::bad_request("invalid_json", "m"),
            ApiError::unprocessable("invalid_name", "m"),
            ApiError::PayloadTooLarge(1),
            ApiError::UnsupportedMediaType,
            ApiError::Conflict,
            ApiError::KeyStateUnknown("r".into()),
            ApiError::Unavailable("r".into()),
            ApiError::Sealed("r".into()),
            ApiError::NotConfirmed,
            ApiError::Internal,
        ];
        for e in all {
            let (status, code) = e.parts();
            assert!(status.is_client_error() || status.is_server_error());
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
    }
}
