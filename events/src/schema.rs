//! OpenAPI schemas of the string-shaped newtypes, so that the admin and node
//! documents describe ids, names, prefixes and hashes exactly as they are
//! written on the wire.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::{EventHash, KeyId, KeyName, Prefix, RequestId};

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

macro_rules! string_schema {
    ($ty:ty, $build:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                let builder: ObjectBuilder = $build;
                builder.into()
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}

string_schema!(
    KeyId,
    string("A key's id (a UUIDv7)").format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
);
string_schema!(
    KeyName,
    string("Display name: 1 to 200 characters, trimmed, no control characters")
        .min_length(Some(1))
        .max_length(Some(crate::MAX_NAME_CHARS))
);
string_schema!(
    Prefix,
    string("The key's public prefix: its leading 8 characters").pattern(Some("^[0-9A-Za-z]{8}$"))
);
string_schema!(
    RequestId,
    string("Request id: 1 to 128 of A-Z a-z 0-9 . _ : -").pattern(Some("^[A-Za-z0-9._:-]{1,128}$"))
);
string_schema!(
    EventHash,
    string("SHA3-256 hash, lowercase hex").pattern(Some("^[0-9a-f]{64}$"))
);
