//! RFC 9457 problem details: the one error shape every service answers with.
//!
//! `code` is the machine word clients switch on (`unavailable`,
//! `limit_exceeded`, …). A 5xx never carries internal text: the cause is
//! logged and the client sees a generic detail.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

/// A problem response waiting to be rendered.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Extra members (e.g. `seats` on `unavailable`).
    pub extra: Map<String, Value>,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), extra: Map::new(), headers: Vec::new() }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).header("www-authenticate", "Bearer")
    }
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("allowed: {allow}"))
            .header("allow", allow)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", detail).header("retry-after", "1")
    }

    /// An internal failure: the cause is logged here, the client sees none of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut body = Map::with_capacity(5 + self.extra.len());
        body.insert("type".into(), Value::String(format!("https://stampede.dev/problems/{}", self.code)));
        body.insert("title".into(), Value::String(self.title().into()));
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("detail".into(), Value::String(self.detail));
        body.insert("code".into(), Value::String(self.code.into()));
        body.extend(self.extra);
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        let mut resp = Response::new(Full::new(Bytes::from(bytes)));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

impl From<deadpool_postgres::PoolError> for Problem {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %e, "postgres pool unavailable");
        Problem::unavailable("the database is unavailable; retry shortly")
    }
}

impl From<tokio_postgres::Error> for Problem {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            tracing::warn!(error = %e, "postgres connection closed");
            return Problem::unavailable("the database is unavailable; retry shortly");
        }
        Problem::internal(e)
    }
}

impl From<redis::RedisError> for Problem {
    fn from(e: redis::RedisError) -> Self {
        if crate::store::unavailable(&e) {
            tracing::warn!(error = %e, "redis unavailable");
            return Problem::unavailable("the inventory store is unavailable; retry shortly");
        }
        Problem::internal(e)
    }
}
