//! The shape of every error answer, for the OpenAPI documents of admin and
//! nodes: `{"error": {"code": "...", "message": "..."}}`.

/// Every error answer: a stable code and a message for people.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// The error itself.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, such as `invalid_name`, `not_found`,
    /// `unknown_key` or `read_only_key` (the README lists each service's).
    code: String,
    /// What went wrong, in words; never repeats a key or what the client sent.
    message: String,
}
