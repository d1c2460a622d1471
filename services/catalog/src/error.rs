//! The catalog's errors and the problem+json each one answers with.

use hyper::StatusCode;
use stampede_common::Problem;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CatalogError {
    /// A field breaks a rule; `field` names it (`sections[2].rows`).
    #[error("{detail}")]
    Invalid { field: String, detail: String },
    /// A bad query parameter (`limit`, `cursor`).
    #[error("{detail}")]
    BadQuery { code: &'static str, detail: String },
    #[error("no such event")]
    NotFound,
    #[error("no such section")]
    SectionNotFound,
    #[error("an If-Match header with the event's version is required")]
    PreconditionRequired,
    #[error("If-Match must be the event's version, e.g. 3 or \"3\"")]
    BadPrecondition,
    #[error("the event has changed: it is at version {current}")]
    VersionMismatch { current: i32 },
    #[error("{0} cannot change once the event is published")]
    Published(&'static str),
    #[error("the event is already published")]
    AlreadyPublished,
    /// Redis already holds a different layout for this event (a publish
    /// whose commit failed, then a layout edit): refuse rather than guess.
    #[error("the inventory store already holds a different layout for this event")]
    InventoryConflict,
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl CatalogError {
    pub(crate) fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), detail: detail.into() }
    }
}

impl From<CatalogError> for Problem {
    fn from(e: CatalogError) -> Self {
        let detail = e.to_string();
        match e {
            CatalogError::Invalid { field, .. } => Problem::bad_request("invalid_event", detail).with("field", field),
            CatalogError::BadQuery { code, .. } => Problem::bad_request(code, detail),
            CatalogError::NotFound | CatalogError::SectionNotFound => Problem::not_found(detail),
            CatalogError::PreconditionRequired => {
                Problem::new(StatusCode::PRECONDITION_REQUIRED, "precondition_required", detail)
            }
            CatalogError::BadPrecondition => Problem::bad_request("invalid_if_match", detail),
            CatalogError::VersionMismatch { current } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "version_mismatch", detail)
                    .with("current_version", current)
            }
            CatalogError::Published(_) => Problem::conflict("published", detail),
            CatalogError::AlreadyPublished => Problem::conflict("already_published", detail),
            CatalogError::InventoryConflict => Problem::conflict("inventory_conflict", detail),
            CatalogError::Pool(e) => e.into(),
            CatalogError::Postgres(e) => e.into(),
            CatalogError::Redis(e) => e.into(),
        }
    }
}
