//! The web console: hand-written HTML, CSS and JavaScript, compiled into the
//! binary (no build step, nothing from a CDN), served at `/`.
//!
//! The page talks to the `/v1` API on the same origin with the admin key the
//! user logs in with. The headers below keep it that way: a strict Content
//! Security Policy (scripts, styles and requests from this origin only), no
//! framing, no referrer, no caching of the page.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");
const ICON: &str = include_str!("../console/icon.svg");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes, to merge into the admin router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/console/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ]
    .map(|(name, value)| (name, HeaderValue::from_static(value)));
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_what_ships_in_the_binary() {
        for (name, text) in [
            ("index.html", INDEX),
            ("app.js", SCRIPT),
            ("app.css", STYLE),
        ] {
            assert!(!text.contains("http://"), "{name} refers to another origin");
            assert!(
                !text.contains("https://"),
                "{name} refers to another origin"
            );
            assert!(!text.contains("localStorage"), "{name} uses localStorage");
        }
        assert!(
            !INDEX.contains("<script>"),
            "inline scripts would break the CSP"
        );
        assert!(INDEX.contains(r#"src="/console/app.js""#));
        assert!(INDEX.contains(r#"href="/console/app.css""#));
    }

    #[test]
    fn data_reaches_the_page_as_text_never_as_markup() {
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("document.write"));
    }
}
