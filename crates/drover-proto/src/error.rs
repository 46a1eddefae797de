//! The error body every `/api/v1` endpoint returns on failure.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{error, detail}`: `error` is a short stable code (`unauthorized`, `bad_request`,
/// `not_found`, `conflict`, `payload_too_large`, `unprocessable`, `internal`), `detail`
/// says what was wrong in words a person can act on (field, position, reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// Stable machine-readable code.
    pub error: String,
    /// Human-readable explanation naming the field or position at fault.
    pub detail: String,
}
