//! One error type for the whole server, shaped for clients.
//!
//! Every failure a client can see is an [`ApiError`]: over HTTP it becomes
//! `{"error": {"code", "message"}}` with the matching status, over WebSocket an `error` frame
//! with the same [`ErrorCode`]. Internal details are logged, never sent.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;

/// The machine-readable error codes shared by the HTTP API and the WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    TooLarge,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A rule on one field of the request body is broken: `field` names it, so a form can
    /// show the (translated) message beside that field.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A unique value (a nickname) is taken: a conflict about one field of the body.
    #[error("{message}")]
    Taken {
        field: &'static str,
        message: String,
    },
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("worker pool error: {0}")]
    Blocking(#[from] actix_web::error::BlockingError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The client-facing code of this error.
    pub fn code(&self) -> ErrorCode {
        use diesel::result::{DatabaseErrorKind, Error as DieselError};
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidField { .. } => ErrorCode::BadRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) | ApiError::Database(DieselError::NotFound) => {
                ErrorCode::NotFound
            }
            ApiError::Conflict(_)
            | ApiError::Taken { .. }
            | ApiError::Database(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _,
            )) => ErrorCode::Conflict,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::TooLarge(_) => ErrorCode::TooLarge,
            ApiError::Unavailable(_) | ApiError::Pool(_) => ErrorCode::Unavailable,
            ApiError::Database(_) | ApiError::Blocking(_) | ApiError::Internal(_) => {
                ErrorCode::Internal
            }
        }
    }

    /// The message a client may see: internal causes are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal server error".to_owned(),
            ErrorCode::Unavailable => "service temporarily unavailable".to_owned(),
            ErrorCode::NotFound if matches!(self, ApiError::Database(_)) => "not found".to_owned(),
            ErrorCode::Conflict if matches!(self, ApiError::Database(_)) => {
                "already exists".to_owned()
            }
            _ => self.to_string(),
        }
    }

    /// The body field this error is about, when it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidField { field, .. } | ApiError::Taken { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `code` for programs, `message` for people (in English: clients translate by `code` and
/// `field`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request body's field the error is about (`nickname`, `password`, `themes`,
    /// `capabilities`, …), when it is about one: a form shows the error beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// Builds the JSON error response for a code and message (also used by extractor handlers).
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> HttpResponse {
    error_response_with_status(code.status(), code, message)
}

/// The JSON error response with a status more precise than its code's (415 and 405 are
/// `bad_request` for programs; the status says which kind).
pub fn error_response_with_status(
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code,
            message: message.into(),
            field: None,
        },
    })
}

/// 405 for a method the route does not support, with the `Allow` header RFC 9110 asks for.
pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> HttpResponse {
    let allow = allowed.join(", ");
    let mut response = error_response_with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        format!("{method} is not allowed on {path}; use {allow}"),
    );
    if let Ok(value) = allow.parse() {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// The error responses every operation shares, declared once for the OpenAPI document and
/// listed in each `#[utoipa::path(responses(..))]` that can answer them. Only the document
/// uses these types; the responses themselves are built by [`ApiError`] and the extractor
/// error handlers in `startup.rs`.
pub mod documented {
    use super::ErrorBody;

    /// For operations that take a JSON body: the extractor's three refusals, before the
    /// handler runs, and the handler's own rule checks.
    #[derive(utoipa::IntoResponses)]
    pub enum JsonBodyErrors {
        /// The body is not valid JSON for this operation, a path or query parameter is
        /// malformed, or a rule is broken; the message says which.
        #[response(status = 400)]
        Invalid(ErrorBody),
        /// The body is over the configured limit (`--max-body-bytes`).
        #[response(status = 413)]
        TooLarge(ErrorBody),
        /// The `Content-Type` is not `application/json`.
        #[response(status = 415)]
        NotJson(ErrorBody),
    }

    /// For operations with path or query parameters and no body.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 400,
        description = "a path or query parameter is malformed or out of range; the message says which"
    )]
    pub struct InvalidParams(pub ErrorBody);

    /// For operations that need a session (cookie or bearer token).
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 401,
        description = "no credential, or the session expired, was revoked or its account banned"
    )]
    pub struct NotLoggedIn(pub ErrorBody);

    /// For the admin API: refused by its guard before the route, body or path is read.
    #[derive(utoipa::IntoResponses)]
    pub enum AdminDenied {
        /// Not logged in, or the session expired, was revoked or its account banned.
        #[response(status = 401)]
        Unauthorized(ErrorBody),
        /// Logged in, but not an admin.
        #[response(status = 403)]
        Forbidden(ErrorBody),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.code() == ErrorCode::Internal || self.code() == ErrorCode::Unavailable {
            log::error!("request failed: {self}");
        }
        let mut response = HttpResponse::build(self.code().status()).json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
                field: self.field(),
            },
        });
        if let ApiError::RateLimited { retry_after_secs } = self {
            if let Ok(value) = retry_after_secs.to_string().parse() {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Result alias for handlers and queries.
pub type ApiResult<T> = Result<T, ApiError>;
