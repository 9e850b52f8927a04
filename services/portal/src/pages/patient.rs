//! One patient's page: registration, consent, the card, care team, deletion.

use super::*;

#[derive(Default)]
struct ConsentLine {
    /// The ID of a consent whose details fail their integrity check: shown as unreadable.
    unreadable: Option<String>,
    id: String,
    signer: String,
    signed_on: String,
    scope: String,
    has_scan: bool,
    withdrawn: bool,
    renewal: bool,
}

struct DirectoryLine {
    code: String,
    name: String,
    kind: &'static str,
}

struct ProfileLines {
    id: String,
    name: String,
    kana: String,
    birth_date: String,
    sex: &'static str,
    care_level: &'static str,
    address: Option<String>,
    phone: Option<String>,
    primary_doctor: Option<String>,
}

/// What the person may do on the page (each is the authorizer's answer).
#[derive(Default)]
struct Mays {
    update: bool,
    read_consent: bool,
    record_consent: bool,
    renew_consent: bool,
    withdraw_consent: bool,
    read_team: bool,
    invite: bool,
    remove: bool,
    leave: bool,
    delete: bool,
}

/// The patient's card, on the registering facility's page.
struct CardLine {
    number: String,
    issued_at: String,
    failures_within_hour: i64,
    locked_until: Option<String>,
    recent_failures: usize,
    may_reissue: bool,
}

#[derive(Template)]
#[template(path = "patient.html")]
struct PatientPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    emergency_until: Option<String>,
    card: Option<CardLine>,
    patient: ProfileLines,
    may: Mays,
    consents: Vec<ConsentLine>,
    consent_on_file: bool,
    /// A withdrawal on file and no consent after it: what can be recorded now is a renewal.
    consent_withdrawn: bool,
    team: Vec<TeamMember>,
    directory: Vec<DirectoryLine>,
    today: String,
    standard_scope: &'static str,
    upload_limit_mb: usize,
}

fn done_message(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "registered" => "登録しました / Registered",
        "updated" => "修正しました / Saved",
        "consent" => "同意書を登録しました。ケアチームの施設が連絡帳を閲覧できます / Consent recorded: the care team now sees the notebook",
        "consent_renewed" => "再同意を登録しました。ケアチームの施設が再び連絡帳を閲覧できます / Renewed consent recorded: the care team sees the notebook again",
        "withdrawn" => "同意の撤回を記録しました。登録施設以外は閲覧できなくなりました / Withdrawal recorded: only the registering facility sees the patient now",
        "invited" => "招待しました。相手の施設の承諾を待っています / Invited: waiting for the facility to accept",
        "removed" => "ケアチームから外しました / Removed from the care team",
        "opened" => "緊急閲覧を開始しました / Emergency access opened",
        "card_reissued" => "カード番号を再発行しました。以前の番号は使えません。新しいカードを印刷してください / Card re-issued: the old number no longer works; print the new card",
        _ => return None,
    })
}

async fn patient_page(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    user: &SignedIn,
    token: &CsrfToken,
    raw_id: &str,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let id = match patient_id(raw_id) {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    let who = match authorize::<may::PatientRead>(state, user, id).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let person = roles(user);
    let consent_reader = renrakucho_http::access::check::<may::ConsentRead>(state, user, id).await;
    let team_reader = renrakucho_http::access::check::<may::CareTeamRead>(state, user, id).await;
    let may = Mays {
        read_consent: consent_reader.is_some(),
        read_team: team_reader.is_some(),
        ..Mays::asked(state, &person, who.facility(), id).await
    };
    let patient = match renrakucho_registry::patient(&state.db, &state.keyring, &who, origin).await
    {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let consents = if let Some(reader) = &consent_reader {
        match renrakucho_registry::consents_of(&state.db, &state.keyring, reader, origin).await {
            Ok(c) => c,
            Err(e) => return failed(e),
        }
    } else {
        Vec::new()
    };
    let team = if let Some(reader) = &team_reader {
        match renrakucho_registry::care_team_of(&state.db, reader, origin).await {
            Ok(t) => t,
            Err(e) => return failed(e),
        }
    } else {
        Vec::new()
    };
    let directory = if may.invite {
        invitable(state, who.facility(), &team).await
    } else {
        Vec::new()
    };
    let emergency_until = emergency_until(state, &who, origin).await;
    // The registering facility prints the card: its number, and what tried it.
    let card = if patient.registering_facility == who.facility() {
        match card_line(state, &who, &person, origin).await {
            Ok(card) => Some(card),
            Err(e) => return failed(e),
        }
    } else {
        None
    };
    let view = PatientView::from(patient.clone());
    let page = PatientPage {
        card,
        admin: is_admin(user),
        token: authenticity(token),
        done,
        error: error.map(|e| e.message),
        emergency_until,
        patient: ProfileLines {
            id: view.id.to_string(),
            name: view.name,
            kana: view.kana,
            birth_date: view.birth_date,
            sex: patient.profile.sex.label_ja(),
            care_level: patient.profile.care_level.label_ja(),
            address: view.address,
            phone: view.phone,
            primary_doctor: view.primary_doctor,
        },
        consent_on_file: consents
            .iter()
            .filter_map(Listed::readable)
            .any(|c| c.withdrawn_at.is_none()),
        consent_withdrawn: consents
            .iter()
            .filter_map(Listed::readable)
            .any(|c| c.withdrawn_at.is_some())
            && !consents
                .iter()
                .filter_map(Listed::readable)
                .any(|c| c.withdrawn_at.is_none()),
        consents: consents.into_iter().map(ConsentLine::from).collect(),
        team,
        directory: directory
            .into_iter()
            .map(|d| DirectoryLine {
                code: d.code,
                name: d.name,
                kind: d.kind.label_ja(),
            })
            .collect(),
        may,
        today: today(),
        standard_scope: ConsentScope::STANDARD,
        upload_limit_mb: state.care.upload_limit_bytes / (1024 * 1024),
    };
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (token.clone(), render(status, &page)).into_response()
}

impl From<Listed<renrakucho_registry::Consent>> for ConsentLine {
    fn from(listed: Listed<renrakucho_registry::Consent>) -> Self {
        let c = match listed {
            Listed::Readable(c) => c,
            Listed::Unreadable(u) => {
                return ConsentLine {
                    unreadable: Some(u.id.to_string()),
                    ..ConsentLine::default()
                }
            }
        };
        ConsentLine {
            unreadable: None,
            id: c.id.to_string(),
            signer: match &c.signer {
                Signer::Patient => "本人 / the patient".to_string(),
                Signer::Family { name, relation } => format!("家族（{relation}）{name}"),
            },
            signed_on: c
                .signed_on
                .format(time::macros::format_description!("[year]-[month]-[day]"))
                .unwrap_or_default(),
            scope: c.scope.as_str().to_string(),
            has_scan: c.scan_media_type.is_some(),
            withdrawn: c.withdrawn_at.is_some(),
            renewal: c.renewal,
        }
    }
}

impl Mays {
    /// The authorizer's answer for each act on the page but reading consent and the team
    /// (those come with their capabilities).
    async fn asked(
        state: &AppState,
        person: &[Role],
        facility: renrakucho_core::FacilityId,
        id: renrakucho_core::PatientId,
    ) -> Self {
        let mut may = Mays::default();
        for (flag, action) in [
            (&mut may.update, Action::PatientUpdate),
            (&mut may.record_consent, Action::ConsentRecord),
            (&mut may.renew_consent, Action::ConsentRenew),
            (&mut may.withdraw_consent, Action::ConsentWithdraw),
            (&mut may.invite, Action::CareTeamInvite),
            (&mut may.remove, Action::CareTeamRemove),
            (&mut may.leave, Action::CareTeamLeave),
            (&mut may.delete, Action::DeletionRecord),
        ] {
            *flag = state
                .authz
                .allowed(person, facility, id, action)
                .await
                .unwrap_or(false);
        }
        may
    }
}

/// The facilities of the directory that could be invited: not this one, not already in the
/// team or invited.
async fn invitable(
    state: &AppState,
    facility: renrakucho_core::FacilityId,
    team: &[TeamMember],
) -> Vec<DirectoryEntry> {
    renrakucho_registry::directory(&state.db, facility)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            d.id != facility
                && !team
                    .iter()
                    .any(|m| m.facility == d.id && matches!(m.status, "active" | "invited"))
        })
        .collect()
}

/// Sharing facilities read the notebook; a facility that sees the patient only through an
/// emergency grant is told so, with the end of its grant (`None` otherwise).
async fn emergency_until(
    state: &AppState,
    who: &Authorized<may::PatientRead>,
    origin: &renrakucho_store::audit::Origin,
) -> Option<String> {
    let id = who.patient();
    if state
        .authz
        .allowed(&Role::all(), who.facility(), id, Action::NotebookWrite)
        .await
        .unwrap_or(false)
    {
        return None;
    }
    let actor = renrakucho_registry::StaffActor::from(who);
    renrakucho_registry::emergency_grants(&state.db, &state.keyring, actor, origin, 50, |_, _| {
        std::future::ready(false)
    })
    .await
    .ok()
    .and_then(|grants| {
        grants
            .into_iter()
            .filter(|g| g.ours && g.open && g.patient == id)
            .map(|g| g.expires_at)
            .max()
    })
    .map(local)
}

/// The patient's card as the registering facility prints it: its number, and what tried it.
async fn card_line(
    state: &AppState,
    who: &Authorized<may::PatientRead>,
    person: &[Role],
    origin: &renrakucho_store::audit::Origin,
) -> Result<CardLine, ApiError> {
    let c = renrakucho_registry::patient_card(&state.db, &state.keyring, who, origin).await?;
    Ok(CardLine {
        number: c.number,
        issued_at: local(c.issued_at),
        failures_within_hour: c.failures_within_hour,
        locked_until: c.locked_until.map(local),
        recent_failures: c.recent_failures.len(),
        may_reissue: state
            .authz
            .allowed(
                person,
                who.facility(),
                who.patient(),
                Action::PatientCardReissue,
            )
            .await
            .unwrap_or(false),
    })
}

#[tracing::instrument(skip_all)]
pub async fn show_patient(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    patient_page(
        &state,
        &origin,
        &user,
        &token,
        &id,
        done_message(query.done.as_deref()),
        None,
    )
    .await
}

/// After an action on the patient page: back to the page with a message, or the page again
/// with the error.
async fn after(
    state: &AppState,
    origin: &renrakucho_store::audit::Origin,
    user: &SignedIn,
    token: &CsrfToken,
    id: &str,
    result: Result<&'static str, ApiError>,
) -> Response {
    match result {
        Ok(done) => {
            if let Ok(patient) = patient_id(id) {
                renrakucho_http::access::changed(state, patient).await;
            }
            Redirect::to(&format!("/patients/{id}?done={done}")).into_response()
        }
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::FORBIDDEN => {
            failed(e)
        }
        Err(e) => {
            let status = e.status;
            let mut page = patient_page(state, origin, user, token, id, None, Some(e)).await;
            if page.status().is_success() || page.status() == StatusCode::UNPROCESSABLE_ENTITY {
                *page.status_mut() = status;
            }
            page
        }
    }
}

/// Records a consent from the multipart form (with the scan, if one was chosen).
#[tracing::instrument(skip_all)]
pub async fn record_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let mut fields = std::collections::HashMap::<String, String>::new();
    let mut scan: Option<Vec<u8>> = None;
    let limit = state.care.upload_limit_bytes;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                return failed(renrakucho_api::patients::too_large(limit));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "scan" {
            let bytes = match field.bytes().await {
                Ok(b) => b,
                Err(_) => return failed(renrakucho_api::patients::too_large(limit)),
            };
            if bytes.len() > limit {
                return failed(renrakucho_api::patients::too_large(limit));
            }
            if !bytes.is_empty() {
                scan = Some(bytes.to_vec());
            }
        } else if let Ok(text) = field.text().await {
            fields.insert(name, text);
        }
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    if let Err(e) = renrakucho_http::input::multipart_fields(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        return failed(e);
    }
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::ConsentRecord>(&state, &user, pid).await?;
        let signer = match get("signer") {
            "family" => Signer::family(get("signer_name"), get("signer_relation"))?,
            "patient" => Signer::Patient,
            _ => {
                return Err(InvalidValue::new(
                    "signer",
                    "署名者（本人か家族か）を選んでください / choose who signed",
                )
                .into())
            }
        };
        let form = consent_form(signer, get("signed_on"), Some(get("scope")))?;
        let recorded = renrakucho_registry::record_consent(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            &origin,
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
    after(&state, &origin, &user, &token, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn consent_scan(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
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
            &origin,
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
pub async fn withdraw_consent(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::ConsentWithdraw>(&state, &user, pid).await?;
        renrakucho_registry::withdraw_consent(&state.db, &who, &origin).await?;
        Ok("withdrawn")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

/// Re-issues the patient's card (the registering facility): the old number stops working.
#[tracing::instrument(skip_all)]
pub async fn reissue_card(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::PatientCardReissue>(&state, &user, pid).await?;
        renrakucho_registry::reissue_card(&state.db, &state.keyring, &who, &origin).await?;
        Ok("card_reissued")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    facility_code: String,
}

#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<InviteForm>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::CareTeamInvite>(&state, &user, pid).await?;
        if form.facility_code.trim().is_empty() {
            return Err(InvalidValue::new(
                "facility_code",
                "招待する施設を選んでください / choose a facility to invite",
            )
            .into());
        }
        renrakucho_registry::invite(&state.db, &who, &origin, form.facility_code.trim()).await?;
        Ok("invited")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn remove_member(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path((id, facility)): Path<(String, String)>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let facility = uuid::Uuid::parse_str(&facility)
            .map(renrakucho_core::FacilityId::from_uuid)
            .map_err(|_| ApiError::not_found())?;
        let who = authorize::<may::CareTeamRemove>(&state, &user, pid).await?;
        renrakucho_registry::remove_member(&state.db, &who, &origin, facility).await?;
        Ok("removed")
    }
    .await;
    after(&state, &origin, &user, &token, &id, result).await
}

#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::CareTeamLeave>(&state, &user, pid).await?;
        renrakucho_registry::leave(&state.db, &who, &origin).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(&state, patient).await;
            }
            Redirect::to("/patients").into_response()
        }
        Err(e) => after(&state, &origin, &user, &token, &id, Err(e)).await,
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

#[tracing::instrument(skip_all)]
pub async fn request_deletion(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    PageUser(user): PageUser,
    token: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let result = async {
        let pid = patient_id(&id)?;
        let who = authorize::<may::DeletionRecord>(&state, &user, pid).await?;
        if form.confirm != "yes" {
            return Err(ApiError::from(InvalidValue::new(
                "confirm",
                "削除は取り消せません。確認欄にチェックしてください / deletion cannot be undone: tick the confirmation",
            )));
        }
        renrakucho_registry::request_deletion(
            &state.db,
            &state.keyring,
            &state.files,
            &who,
            &origin,)
        .await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(&state, patient).await;
            }
            Redirect::to("/patients").into_response()
        }
        Err(e) => after(&state, &origin, &user, &token, &id, Err(e)).await,
    }
}
