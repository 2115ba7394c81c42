//! Reading request bodies and queries, with every failure mapped to a clear 4xx.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// The largest request body accepted.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// A JSON body: requires `Content-Type: application/json`; rejects unknown
/// fields (the target types use `deny_unknown_fields`).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Refuse a body announced as too large before reading any of it (and
        // before hyper would answer `Expect: 100-continue`).
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) if e.status() == 413 => {
                ApiError::PayloadTooLarge(BODY_LIMIT)
            }
            other => ApiError::bad_request("unreadable_body", other.body_text()),
        })?;
        parse(&bytes).map(JsonBody)
    }
}

pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            ),
            Category::Data => ApiError::unprocessable("invalid_body", without_echo(&e.to_string())),
        }
    })
}

/// A query string, with unknown or malformed parameters answered by 400.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e: QueryRejection| {
                // "Failed to deserialize query string: <name>: <problem>":
                // the name is whatever the client sent, so it goes.
                let text = e.body_text();
                let problem = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .map_or(text.as_str(), |rest| match rest.split_once(": ") {
                        Some((name, problem)) if !name.contains(' ') => problem,
                        _ => rest,
                    });
                ApiError::bad_request(
                    "invalid_query",
                    format!("bad query string: {}", without_echo(problem)),
                )
            })
    }
}

/// A parser's message without what the client sent: serde quotes unknown
/// field names and bad string values, and a client may have pasted a key or
/// a token there. Field names it expected (in backticks after "expected")
/// stay, so the message still says what would be right.
pub(crate) fn without_echo(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = rest.find(['`', '"']);
        let Some(open) = next else {
            out.push_str(rest);
            return out;
        };
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            out.push('…');
            return out;
        };
        let quoted = &after[..close];
        let expected_name = quote == '`'
            && (out.contains("expected") || out.ends_with("missing field "))
            && quoted.len() <= 32
            && quoted.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if expected_name {
            out.push('`');
            out.push_str(quoted);
            out.push('`');
        } else {
            out.push_str(if quote == '`' { "`…`" } else { "\"…\"" });
        }
        rest = &after[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::without_echo;

    #[test]
    fn messages_keep_expected_names_and_drop_what_was_sent() {
        let key = "Ab3dE5fGhIjKlMnOpQrStUvWxYz0123456789AbC";
        assert_eq!(
            without_echo(&format!(
                "unknown field `{key}`, expected one of `name`, `read_only`"
            )),
            "unknown field `…`, expected one of `name`, `read_only`"
        );
        assert_eq!(
            without_echo(&format!(
                "invalid type: string \"{key}\", expected a boolean at line 1 column 60"
            )),
            "invalid type: string \"…\", expected a boolean at line 1 column 60"
        );
        assert_eq!(
            without_echo("unknown field `secret_token_abc`, expected `q`"),
            "unknown field `…`, expected `q`"
        );
        assert_eq!(without_echo("missing field `name`"), "missing field `name`");
    }
}
