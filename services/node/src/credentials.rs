//! Finding the presented key and the access asked for in request headers.

use axum::http::{HeaderMap, Method, header};
use keyledger_events::KeyFormatError;
use keyledger_projections::{Access, Denial};

const API_KEY: &str = "x-api-key";
const FORWARDED_METHOD: [&str; 2] = ["x-forwarded-method", "x-original-method"];

/// The key a request presents, from `Authorization: Bearer <key>` (scheme
/// case-insensitive) or `X-API-Key`. Presenting two different keys is a
/// denial; presenting the same key in several places is fine.
pub fn presented_key(headers: &HeaderMap) -> Result<&str, Denial> {
    let mut found: Option<&str> = None;
    let bearers = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| {
            let Ok(text) = v.to_str() else {
                return Some(Err(Denial::Malformed(KeyFormatError::Alphabet)));
            };
            // The scheme ends at the first space or tab (RFC 9110 allows both).
            let (scheme, rest) = text.trim().split_once([' ', '\t'])?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| Ok(rest.trim()))
        });
    let api_keys = headers.get_all(API_KEY).iter().map(|v| {
        v.to_str()
            .map(str::trim)
            .map_err(|_| Denial::Malformed(KeyFormatError::Alphabet))
    });
    for candidate in bearers.chain(api_keys) {
        let candidate = candidate?;
        match found {
            Some(seen) if seen != candidate => return Err(Denial::Conflicting),
            _ => found = Some(candidate),
        }
    }
    found.ok_or(Denial::Missing)
}

/// The access a request asks for: from `X-Forwarded-Method` or
/// `X-Original-Method` when a proxy sent them, else the request's own method.
/// When a proxy sent several methods, the request is a read only if all are.
pub fn access_for(headers: &HeaderMap, method: &Method) -> Access {
    let mut forwarded = FORWARDED_METHOD
        .iter()
        .flat_map(|h| headers.get_all(*h).iter())
        .peekable();
    if forwarded.peek().is_none() {
        return Access::for_method(method.as_str());
    }
    let all_reads = forwarded.all(|v| {
        v.to_str()
            .is_ok_and(|m| Access::for_method(m.trim()) == Access::Read)
    });
    if all_reads {
        Access::Read
    } else {
        Access::Write
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_the_key_in_either_header_with_any_scheme_case() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer abc")])),
            Ok("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bEaReR abc")])),
            Ok("abc")
        );
        assert_eq!(presented_key(&headers(&[("x-api-key", "abc")])), Ok("abc"));
        assert_eq!(
            presented_key(&headers(&[
                ("authorization", "Bearer abc"),
                ("x-api-key", "abc")
            ])),
            Ok("abc")
        );
    }

    #[test]
    fn conflicting_or_missing_keys_are_denied() {
        assert_eq!(
            presented_key(&headers(&[
                ("authorization", "Bearer abc"),
                ("x-api-key", "abd")
            ])),
            Err(Denial::Conflicting)
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "abc"), ("x-api-key", "abd")])),
            Err(Denial::Conflicting)
        );
        assert_eq!(
            presented_key(&headers(&[
                ("authorization", "Bearer\tabc"),
                ("x-api-key", "abd")
            ])),
            Err(Denial::Conflicting),
            "a tab after the scheme still presents the key"
        );
        assert_eq!(presented_key(&headers(&[])), Err(Denial::Missing));
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic dTpw")])),
            Err(Denial::Missing)
        );
    }

    #[test]
    fn forwarded_methods_decide_the_access() {
        assert_eq!(access_for(&headers(&[]), &Method::POST), Access::Write);
        assert_eq!(access_for(&headers(&[]), &Method::GET), Access::Read);
        assert_eq!(
            access_for(&headers(&[("x-forwarded-method", "POST")]), &Method::GET),
            Access::Write
        );
        assert_eq!(
            access_for(&headers(&[("x-original-method", "DELETE")]), &Method::GET),
            Access::Write
        );
        assert_eq!(
            access_for(&headers(&[("x-forwarded-method", "GET")]), &Method::POST),
            Access::Read
        );
        assert_eq!(
            access_for(
                &headers(&[("x-forwarded-method", "GET"), ("x-original-method", "PUT")]),
                &Method::GET
            ),
            Access::Write
        );
    }
}
