//! Every JSON request body of the HTTP API, read as actix's `web::Json` reads it
//! (`serde_json::from_slice` over the raw bytes) and run through the checks its handler makes
//! before it touches the database or hashes a password; a refusal is rendered as the
//! handler's error response would be.
//!
//! Each input is tried as every body: one corpus covers them all, and a body that is valid
//! for one endpoint is exercised against the others' rules too.
//!
//! Beyond "no panic": every accepted body keeps its rules (a registered nickname is trimmed
//! and valid, a theme name is 1-48 characters...); every refusal is a 400 whose body is
//! valid JSON; and one body's heap use stays within `tertulia_fuzz::budget`.
#![no_main]

use actix_web::{body::MessageBody, http::StatusCode, ResponseError};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tertulia::{
    auth,
    error::{ApiError, ApiResult},
    http::{
        admin::{CreateThemeRequest, RoleRequest, UpdateThemeRequest, THEME_NAME_MAX},
        auth::{LoginRequest, RegisterRequest, UpdateMeRequest},
    },
};

fuzz_target!(|data: &[u8]| {
    tertulia_fuzz::checked(data.len(), || bodies(data));
});

/// The body as `web::Json<T>` would hand it to the handler, or `None` when it answers 400.
fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

/// A handler's outcome: a refusal must be a 400 with a valid JSON error body.
fn outcome<T>(result: ApiResult<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            refused(&err);
            None
        }
    }
}

fn refused(err: &ApiError) {
    let response = err.error_response();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{err}");
    let bytes = match response.into_body().try_into_bytes() {
        Ok(bytes) => bytes,
        Err(_) => panic!("an error response has its whole body at hand"),
    };
    let value: Value = serde_json::from_slice(&bytes).expect("an error body is valid JSON");
    assert_eq!(value["error"]["code"], "bad_request");
    assert_eq!(value["error"]["message"], err.to_string());
}

/// Every body the API takes.
fn bodies(data: &[u8]) {
    // POST /api/register
    if let Some(req) = body::<RegisterRequest>(data) {
        if let Some(reg) = outcome(req.checked()) {
            assert_eq!(reg.nickname, reg.nickname.trim());
            assert!(auth::validate_nickname(&reg.nickname).is_ok());
            assert!(auth::validate_password(&reg.password, &reg.nickname).is_ok());
            assert!(
                reg.capabilities != Default::default(),
                "at least one capability"
            );
        }
    }
    // POST /api/login: the rate limiter's keys are built from the trimmed nickname.
    if let Some(req) = body::<LoginRequest>(data) {
        let key = format!("nick:{}", req.nickname.trim().to_lowercase());
        assert!(key.len() <= 5 + 3 * req.nickname.len());
    }
    // PATCH /api/me, for a user whose nickname the input may also be compared with.
    if let Some(req) = body::<UpdateMeRequest>(data) {
        if let Some(changes) = outcome(req.checked("ana_1")) {
            if let Some((new, _)) = &changes.password {
                assert!(auth::validate_password(new, "ana_1").is_ok());
            }
            assert!(changes.capabilities != Some(Default::default()));
        }
    }
    // PUT /api/admin/users/{id}/role: the role is all there is.
    if let Some(req) = body::<RoleRequest>(data) {
        assert!(matches!(req.role.as_str(), "user" | "admin"));
    }
    // POST /api/admin/themes
    if let Some(req) = body::<CreateThemeRequest>(data) {
        if let Some((name, _description)) = outcome(req.checked()) {
            theme_name_holds(&name);
        }
    }
    // PATCH /api/admin/themes/{id}
    if let Some(req) = body::<UpdateThemeRequest>(data) {
        if let Some((name, description)) = outcome(req.checked()) {
            assert!(name.is_some() || description.is_some());
            if let Some(name) = name {
                theme_name_holds(&name);
            }
        }
    }
}

/// A theme name that passed is stored as is: trimmed, 1-48 characters, no control characters.
fn theme_name_holds(name: &str) {
    assert_eq!(name, name.trim());
    assert!((1..=THEME_NAME_MAX).contains(&name.chars().count()));
    assert!(!name.chars().any(char::is_control));
}
