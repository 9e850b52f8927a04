/// What went wrong in storage. Messages name the constraint or the step, never row contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write (the constraint name tells which).
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The row does not exist, or is not visible in this scope (the two are not told apart).
    #[error("not found")]
    NotFound,
    /// A reference to a row that does not exist (a foreign key, SQLSTATE 23503).
    #[error("missing reference on {constraint}")]
    MissingReference { constraint: String },
    /// A rule of the schema refused the value (a CHECK or a guard trigger, SQLSTATE 23514);
    /// the constraint name tells which, so the caller can name the field.
    #[error("refused by rule {constraint}")]
    Rule { constraint: String },
    /// Row-level security refused a write into another scope (SQLSTATE 42501).
    #[error("refused by row-level security")]
    Forbidden,
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database is set up in a way the server must not run with (e.g. the runtime role can
    /// bypass row-level security).
    #[error("{0}")]
    Misconfigured(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = err {
            return StoreError::NotFound;
        }
        if let Some(db) = err.as_database_error() {
            if db.is_unique_violation() {
                return StoreError::Conflict {
                    constraint: db.constraint().unwrap_or("unique").to_string(),
                };
            }
            match db.code().as_deref() {
                Some("42501") => return StoreError::Forbidden,
                // no_data_found, raised by our functions for "nothing to act on".
                Some("P0002") => return StoreError::NotFound,
                Some("23514") => {
                    return StoreError::Rule {
                        constraint: db.constraint().unwrap_or("check").to_string(),
                    }
                }
                Some("23503") => {
                    return StoreError::MissingReference {
                        constraint: db.constraint().unwrap_or("foreign key").to_string(),
                    }
                }
                _ => {}
            }
        }
        StoreError::Database(err)
    }
}

impl StoreError {
    /// True when the database could not be reached at all (the server answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            )
        )
    }
}
