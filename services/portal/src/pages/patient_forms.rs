//! The forms of a patient's page: consent (record, withdraw, read its scan), the card,
//! the care team (invite, remove, leave) and deletion. Each asks the authorizer for its one
//! capability, calls the domain, and goes back to the page (`after`).

use super::patient::after;
use super::*;

/// Where a person who no longer sees the patient goes after their form: the patient list.
async fn to_the_list(page: &PageRequest, id: &str, result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => {
            if let Ok(patient) = patient_id(id) {
                renrakucho_http::access::changed(&page.state, patient).await;
            }
            Redirect::to("/patients").into_response()
        }
        Err(e) => after(page, id, Err(e)).await,
    }
}

/// A consent form as posted: its text fields and the scan, if one was chosen.
struct ConsentUpload {
    fields: std::collections::HashMap<String, String>,
    scan: Option<Vec<u8>>,
}

impl ConsentUpload {
    /// Reads the multipart form; a scan over the upload limit is refused (413) unread.
    async fn read(mut multipart: Multipart, limit: usize) -> Result<Self, ApiError> {
        let mut fields = std::collections::HashMap::<String, String>::new();
        let mut scan: Option<Vec<u8>> = None;
        let too_large = || renrakucho_api::patients::too_large(limit);
        while let Some(field) = multipart.next_field().await.map_err(|_| too_large())? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "scan" {
                let bytes = field.bytes().await.map_err(|_| too_large())?;
                if bytes.len() > limit {
                    return Err(too_large());
                }
                if !bytes.is_empty() {
                    scan = Some(bytes.to_vec());
                }
            } else if let Ok(text) = field.text().await {
                fields.insert(name, text);
            }
        }
        renrakucho_http::input::multipart_fields(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        Ok(ConsentUpload { fields, scan })
    }

    fn get(&self, key: &str) -> &str {
        self.fields.get(key).map(String::as_str).unwrap_or_default()
    }

    fn signer(&self) -> Result<Signer, ApiError> {
        Ok(match self.get("signer") {
            "family" => Signer::family(self.get("signer_name"), self.get("signer_relation"))?,
            "patient" => Signer::Patient,
            _ => {
                return Err(InvalidValue::new(
                    "signer",
                    "署名者（本人か家族か）を選んでください / choose who signed",
                )
                .into())
            }
        })
    }
}

/// Records a consent from the multipart form (with the scan, if one was chosen).
#[tracing::instrument(skip_all)]
pub async fn record_consent(
    page: PageRequest,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let mut upload = match ConsentUpload::read(multipart, page.state.care.upload_limit_bytes).await
    {
        Ok(upload) => upload,
        Err(e) => return failed(e),
    };
    let scan = upload.scan.take();
    let result = async {
        let who = page.authorize::<may::ConsentRecord>(&id).await?;
        let form = consent_form(
            upload.signer()?,
            upload.get("signed_on"),
            Some(upload.get("scope")),
        )?;
        let state = &page.state;
        let recorded = renrakucho_registry::record_consent(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            page.origin(),
            form,
            scan.map(|bytes| NewScan { bytes }),
        )
        .await?;
        Ok::<_, ApiError>(if recorded.renewal {
            "consent_renewed"
        } else {
            "consent"
        })
    }
    .await;
    after(&page, &id, result).await
}

/// A consent's scan, downloaded.
#[tracing::instrument(skip_all)]
pub async fn consent_scan(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Path((id, consent)): Path<(String, String)>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let consent = uuid::Uuid::parse_str(&consent).map_err(|_| ApiError::not_found())?;
        let who = authorize::<may::ConsentRead>(&state, &user, pid).await?;
        let (media_type, bytes) = renrakucho_registry::consent_scan(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            &user.origin,
            consent,
        )
        .await?;
        let extension = renrakucho_files::MediaKind::parse(&media_type)
            .map(|k| k.extension())
            .unwrap_or("bin");
        Ok::<_, ApiError>(download(
            &media_type,
            &format!("consent-{consent}.{extension}"),
            bytes,
        ))
    }
    .await;
    result.unwrap_or_else(failed)
}

#[tracing::instrument(skip_all)]
pub async fn withdraw_consent(page: PageRequest, Path(id): Path<String>) -> Response {
    let result = async {
        let who = page.authorize::<may::ConsentWithdraw>(&id).await?;
        renrakucho_registry::withdraw_consent(&page.state.db, &who, page.origin()).await?;
        Ok("withdrawn")
    }
    .await;
    after(&page, &id, result).await
}

/// Re-issues the patient's card (the registering facility): the old number stops working.
#[tracing::instrument(skip_all)]
pub async fn reissue_card(page: PageRequest, Path(id): Path<String>) -> Response {
    let result = async {
        let who = page.authorize::<may::PatientCardReissue>(&id).await?;
        let state = &page.state;
        renrakucho_registry::reissue_card(&state.db, &state.keyring, &who, page.origin()).await?;
        Ok("card_reissued")
    }
    .await;
    after(&page, &id, result).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    facility_code: String,
}

#[tracing::instrument(skip_all)]
pub async fn invite(
    page: PageRequest,
    Path(id): Path<String>,
    Form(form): Form<InviteForm>,
) -> Response {
    let result = async {
        let who = page.authorize::<may::CareTeamInvite>(&id).await?;
        let code = form.facility_code.trim();
        if code.is_empty() {
            return Err(InvalidValue::new(
                "facility_code",
                "招待する施設を選んでください / choose a facility to invite",
            )
            .into());
        }
        renrakucho_registry::invite(&page.state.db, &who, page.origin(), code).await?;
        Ok("invited")
    }
    .await;
    after(&page, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn remove_member(
    page: PageRequest,
    Path((id, facility)): Path<(String, String)>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let facility = uuid::Uuid::parse_str(&facility)
            .map(renrakucho_core::FacilityId::from_uuid)
            .map_err(|_| ApiError::not_found())?;
        let who = authorize::<may::CareTeamRemove>(&page.state, &page.user, pid).await?;
        renrakucho_registry::remove_member(&page.state.db, &who, page.origin(), facility).await?;
        Ok("removed")
    }
    .await;
    after(&page, &id, result).await
}

/// The facility leaves the care team: it no longer sees the patient.
#[tracing::instrument(skip_all)]
pub async fn leave(page: PageRequest, Path(id): Path<String>) -> Response {
    let result = async {
        let who = page.authorize::<may::CareTeamLeave>(&id).await?;
        renrakucho_registry::leave(&page.state.db, &who, page.origin()).await?;
        Ok(())
    }
    .await;
    to_the_list(&page, &id, result).await
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// Records the patient's request to be deleted (confirmed on the form): nobody sees them.
#[tracing::instrument(skip_all)]
pub async fn request_deletion(
    page: PageRequest,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    // Asked after the permission check: nobody is asked for a password for what they may not do.
    let allowed = page.authorize::<may::DeletionRecord>(&id).await;
    if allowed.is_ok()
        && page
            .user
            .require_recent_password(page.state.sessions.reauthenticate_within)
            .is_err()
    {
        return crate::account::confirm_then(&format!("/patients/{id}"));
    }
    let result = async {
        let who = allowed?;
        if form.confirm != "yes" {
            return Err(ApiError::from(InvalidValue::new(
                "confirm",
                "削除は取り消せません。確認欄にチェックしてください / deletion cannot be undone: tick the confirmation",
            )));
        }
        let state = &page.state;
        renrakucho_registry::request_deletion(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            page.origin(),
        )
        .await?;
        Ok(())
    }
    .await;
    to_the_list(&page, &id, result).await
}
