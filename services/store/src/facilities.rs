//! Facilities (tenants): SQL for the `facilities` table.

use renrakucho_core::{FacilityCode, FacilityId, FacilityKind, FacilityName, FacilityStatus};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Database, ScopedTx, StoreError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Facility {
    pub id: FacilityId,
    pub code: String,
    pub name: String,
    pub kind: FacilityKind,
    pub status: FacilityStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    code: String,
    name: String,
    kind: String,
    status: String,
    created_at: OffsetDateTime,
}

pub(crate) fn decode<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| {
        StoreError::Database(sqlx::Error::Decode(
            format!("unexpected value in column {column}").into(),
        ))
    })
}

impl TryFrom<Row> for Facility {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Facility {
            id: FacilityId::from_uuid(r.id),
            code: r.code,
            name: r.name,
            kind: decode("kind", &r.kind)?,
            status: decode("status", &r.status)?,
            created_at: r.created_at,
        })
    }
}

/// A facility to register. Platform scope only (the operator admits facilities, 第6条).
#[derive(Debug, Clone)]
pub struct NewFacility {
    pub code: FacilityCode,
    pub name: FacilityName,
    pub kind: FacilityKind,
    pub status: FacilityStatus,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(tx: &mut ScopedTx, new: &NewFacility) -> Result<Facility, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO facilities (id, code, name, kind, status) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, code, name, kind, status, created_at",
        FacilityId::new().as_uuid(),
        new.code.as_str(),
        new.name.as_str(),
        new.kind.as_str(),
        new.status.as_str()
    )
    .fetch_one(tx.conn())
    .await?;
    row.try_into()
}

/// One facility, if visible in the transaction's scope.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: FacilityId) -> Result<Facility, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, code, name, kind, status, created_at FROM facilities WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// Every facility visible in the scope (all of them in platform scope), by code.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut ScopedTx) -> Result<Vec<Facility>, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, code, name, kind, status, created_at FROM facilities ORDER BY code"
    )
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(Facility::try_from)
    .collect()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_by_code(
    tx: &mut ScopedTx,
    code: &FacilityCode,
) -> Result<Option<Facility>, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, code, name, kind, status, created_at FROM facilities WHERE code = $1",
        code.as_str()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(Facility::try_from)
    .transpose()
}

/// Before anyone is signed in: which facility a sign-in names, and its status. Uses the
/// narrow SECURITY DEFINER function `facility_for_sign_in`; no tenant context is needed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn for_sign_in(
    db: &Database,
    code: &FacilityCode,
) -> Result<Option<(FacilityId, FacilityStatus)>, StoreError> {
    let mut conn = db.connection().await?;
    let row = sqlx::query!(
        r#"SELECT facility_id AS "facility_id!", status AS "status!"
             FROM facility_for_sign_in($1)"#,
        code.as_str(),
    )
    .fetch_optional(conn.conn())
    .await?
    .map(|r| (r.facility_id, r.status));
    conn.done();
    row.map(|(id, status)| Ok((FacilityId::from_uuid(id), decode("status", &status)?)))
        .transpose()
}

/// A facility as the public directory shows it (第16条).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryEntry {
    pub id: FacilityId,
    pub code: String,
    pub name: String,
    pub kind: FacilityKind,
}

/// Active facilities from the public directory: the ones named by `ids`, the one with `code`,
/// or (both `None`) all of them. Usable in any scope.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn directory(
    tx: &mut ScopedTx,
    ids: Option<&[FacilityId]>,
    code: Option<&str>,
) -> Result<Vec<DirectoryEntry>, StoreError> {
    let ids: Option<Vec<Uuid>> = ids.map(|ids| ids.iter().map(|i| i.as_uuid()).collect());
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", code AS "code!", name AS "name!", kind AS "kind!"
             FROM facility_directory($1, $2)"#,
        ids.as_deref(),
        code,
    )
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DirectoryEntry {
                id: FacilityId::from_uuid(r.id),
                code: r.code,
                name: r.name,
                kind: decode("kind", &r.kind)?,
            })
        })
        .collect()
}
