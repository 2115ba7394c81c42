//! The admin API's OpenAPI 3.1 document, generated from the handlers'
//! annotations and the types they answer with, served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub(crate) use keyledger_http::ErrorBody;

struct AdminKeyAuth;

impl Modify for AdminKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin key, or the bootstrap token (which may only create admin keys)",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyledger admin API",
        description = "Issue and manage API keys; every change is a signed event on NATS JetStream.",
        license(name = "Apache-2.0")
    ),
    modifiers(&AdminKeyAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "keys", description = "Create, list, change and remove keys"),
        (name = "audit", description = "A key's history and the stream itself"),
        (name = "operations", description = "Health, readiness, status and metrics")
    )
)]
pub(crate) struct ApiDoc;
