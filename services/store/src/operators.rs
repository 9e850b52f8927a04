//! Platform operator accounts: SQL for `platform_operators`. Platform scope only.

use renrakucho_core::{DisplayName, LoginId, OperatorId, StaffStatus};
use sqlx::FromRow;
use uuid::Uuid;

use crate::facilities::decode;
use crate::{ScopedTx, StoreError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Operator {
    pub id: OperatorId,
    pub login_id: String,
    pub display_name: String,
    pub status: StaffStatus,
}

#[derive(Debug, Clone)]
pub struct OperatorCredentials {
    pub operator: Operator,
    pub password_hash: String,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    login_id: String,
    display_name: String,
    status: String,
    password_hash: String,
}

impl Row {
    fn into_credentials(self) -> Result<OperatorCredentials, StoreError> {
        Ok(OperatorCredentials {
            operator: Operator {
                id: OperatorId::from_uuid(self.id),
                login_id: self.login_id,
                display_name: self.display_name,
                status: decode("status", &self.status)?,
            },
            password_hash: self.password_hash,
        })
    }
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(
    tx: &mut ScopedTx,
    login_id: &LoginId,
    display_name: &DisplayName,
    password_hash: &str,
) -> Result<Operator, StoreError> {
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO platform_operators (id, login_id, display_name, password_hash)
         VALUES ($1, $2, $3, $4) RETURNING id, login_id, display_name, status, password_hash",
        OperatorId::new().as_uuid(),
        login_id.as_str(),
        display_name.as_str(),
        password_hash
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(row.into_credentials()?.operator)
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn find_credentials(
    tx: &mut ScopedTx,
    login_id: &LoginId,
) -> Result<Option<OperatorCredentials>, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, login_id, display_name, status, password_hash FROM
            platform_operators WHERE login_id = $1",
        login_id.as_str()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(Row::into_credentials)
    .transpose()
}

#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn get(tx: &mut ScopedTx, id: OperatorId) -> Result<Operator, StoreError> {
    sqlx::query_as!(
        Row,
        "SELECT id, login_id, display_name, status, password_hash FROM
            platform_operators WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(StoreError::NotFound)?
    .into_credentials()
    .map(|c| c.operator)
}
