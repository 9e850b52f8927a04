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
    page: &PageRequest,
    raw_id: &str,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let who = match page.authorize::<may::PatientRead>(raw_id).await {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let id = who.patient();
    let person = roles(user);
    let consent_reader = renrakucho_http::access::check::<may::ConsentRead>(state, user, id).await;
    let team_reader = renrakucho_http::access::check::<may::CareTeamRead>(state, user, id).await;
    let may = Mays {
        read_consent: consent_reader.is_some(),
        read_team: team_reader.is_some(),
        ..Mays::asked(state, &person, who.facility(), id).await
    };
    let loaded = async {
        let patient = renrakucho_registry::patient(&state.db, &state.keyring, &who, origin).await?;
        let consents = match &consent_reader {
            Some(reader) => {
                renrakucho_registry::consents_of(&state.db, &state.keyring, reader, origin).await?
            }
            None => Vec::new(),
        };
        let team = match &team_reader {
            Some(reader) => renrakucho_registry::care_team_of(&state.db, reader, origin).await?,
            None => Vec::new(),
        };
        Ok::<_, ApiError>((patient, consents, team))
    };
    let (patient, consents, team) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return failed(e),
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
    let (consent_on_file, consent_withdrawn) = consent_state(&consents);
    let view = PatientPage {
        card,
        admin: page.is_admin(),
        token: page.authenticity(),
        done,
        error: error.map(|e| e.message),
        emergency_until,
        patient: ProfileLines::from(patient),
        consent_on_file,
        consent_withdrawn,
        consents: consents.into_iter().map(ConsentLine::from).collect(),
        team,
        directory: directory.into_iter().map(DirectoryLine::from).collect(),
        may,
        today: today(),
        standard_scope: ConsentScope::STANDARD,
        upload_limit_mb: state.care.upload_limit_bytes / (1024 * 1024),
    };
    let status = if view.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page.respond(render(status, &view))
}

/// Whether a consent is on file, and whether there is a withdrawal on file and no consent
/// after it (what can be recorded now is a renewal).
fn consent_state(consents: &[Listed<renrakucho_registry::Consent>]) -> (bool, bool) {
    let readable = || consents.iter().filter_map(Listed::readable);
    let on_file = readable().any(|c| c.withdrawn_at.is_none());
    let withdrawn = readable().any(|c| c.withdrawn_at.is_some()) && !on_file;
    (on_file, withdrawn)
}

impl From<renrakucho_registry::Patient> for ProfileLines {
    fn from(patient: renrakucho_registry::Patient) -> Self {
        let sex = patient.profile.sex.label_ja();
        let care_level = patient.profile.care_level.label_ja();
        let profile = PatientView::from(patient);
        ProfileLines {
            id: profile.id.to_string(),
            name: profile.name,
            kana: profile.kana,
            birth_date: profile.birth_date,
            sex,
            care_level,
            address: profile.address,
            phone: profile.phone,
            primary_doctor: profile.primary_doctor,
        }
    }
}

impl From<DirectoryEntry> for DirectoryLine {
    fn from(d: DirectoryEntry) -> Self {
        DirectoryLine {
            code: d.code,
            name: d.name,
            kind: d.kind.label_ja(),
        }
    }
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
    page: PageRequest,
    Path(id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    patient_page(&page, &id, done_message(query.done.as_deref()), None).await
}

/// After a form on the patient page: back to the page with a message, or the page again
/// with the error (a refusal or an unknown patient: the error page).
pub(super) async fn after(
    page: &PageRequest,
    id: &str,
    result: Result<&'static str, ApiError>,
) -> Response {
    match result {
        Ok(done) => {
            if let Ok(patient) = patient_id(id) {
                renrakucho_http::access::changed(&page.state, patient).await;
            }
            Redirect::to(&format!("/patients/{id}?done={done}")).into_response()
        }
        Err(e) if is_refusal(&e) => failed(e),
        Err(e) => {
            let status = e.status;
            let mut shown = patient_page(page, id, None, Some(e)).await;
            if shown.status().is_success() || shown.status() == StatusCode::UNPROCESSABLE_ENTITY {
                *shown.status_mut() = status;
            }
            shown
        }
    }
}
