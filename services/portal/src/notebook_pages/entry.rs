//! One entry: its page with replies, versions and readers; editing; withdrawal.

use super::*;

#[derive(Template)]
#[template(path = "entry.html")]
struct EntryPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    patient_id: String,
    entry_id: String,
    main: Vec<EntryCard>,
    replies: Vec<EntryCard>,
    read_by: Vec<String>,
    versions: Vec<VersionLine>,
    withdrawn: bool,
    withdrawal_reason: String,
    may_write: bool,
    may_change: bool,
    may_support: bool,
    directory: Vec<(String, String)>,
    version: i32,
    category: String,
    priority: String,
    body: String,
}

#[derive(Default)]
struct VersionLine {
    /// The ID of a version that fails its integrity check: shown as unreadable.
    unreadable: Option<String>,
    version: i32,
    at: String,
    editor: String,
    body: String,
}

/// What the person may do on an entry's page (each is the authorizer's answer).
struct EntryMays {
    write: bool,
    /// Edit or withdraw: the author, or an administrator of the entry's facility.
    change: bool,
    support: bool,
}

impl EntryMays {
    async fn asked(
        page: &PageRequest,
        who: &Authorized<may::NotebookRead>,
        entry: &EntryView,
    ) -> Self {
        let person = roles(&page.user);
        let allowed = |action| {
            page.state
                .authz
                .allowed(&person, who.facility(), who.patient(), action)
        };
        let write = allowed(Action::NotebookWrite).await.unwrap_or(false);
        let support = allowed(Action::SupportRequest).await.unwrap_or(false);
        EntryMays {
            write,
            change: write
                && (entry.author == who.staff()
                    || (page.is_admin() && entry.facility == who.facility())),
            support,
        }
    }
}

/// The entry and its replies are read once shown: the person's read receipts.
async fn mark_entry_read(
    page: &PageRequest,
    who: &Authorized<may::NotebookRead>,
    detail: &renrakucho_notebook::EntryDetail,
) {
    let me = renrakucho_http::access::as_author(&page.user, who.clone());
    let mut ids = vec![detail.entry.id];
    ids.extend(
        detail
            .replies
            .iter()
            .filter_map(Listed::readable)
            .map(|r| r.id),
    );
    if let Err(e) = renrakucho_notebook::mark_read(&page.state.db, &me, page.origin(), &ids).await {
        tracing::warn!(error = %e, "could not record read receipts");
    }
}

/// The facilities of the directory a support request could go to (code, name with kind).
async fn support_directory(page: &PageRequest, facility: FacilityId) -> Vec<(String, String)> {
    renrakucho_registry::directory(&page.state.db, facility)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.id != facility)
        .map(|d| (d.code, format!("{}（{}）", d.name, d.kind.label_ja())))
        .collect()
}

fn reader_line(r: &renrakucho_notebook::ReaderView) -> String {
    format!(
        "{}（{}）{} ・ {}",
        r.name,
        r.profession
            .parse::<renrakucho_core::Profession>()
            .map(|p| p.label_ja())
            .unwrap_or_default(),
        r.facility_name.clone().unwrap_or_default(),
        local(r.read_at)
    )
}

fn version_line(v: &Listed<renrakucho_notebook::VersionView>) -> VersionLine {
    match v {
        Listed::Readable(v) => VersionLine {
            unreadable: None,
            version: v.version,
            at: local(v.edited_at),
            editor: v.editor_name.clone(),
            body: v.body.clone(),
        },
        Listed::Unreadable(u) => VersionLine {
            unreadable: Some(u.id.to_string()),
            ..VersionLine::default()
        },
    }
}

pub(super) async fn entry_page(
    page: &PageRequest,
    raw_patient: &str,
    raw_entry: &str,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let result = async {
        let (patient, entry) = entry_ids(raw_patient, raw_entry)?;
        let who = authorize::<may::NotebookRead>(&page.state, &page.user, patient).await?;
        let detail = renrakucho_notebook::entry_detail(
            &page.state.db,
            &page.state.keyring,
            &who,
            page.origin(),
            entry,
        )
        .await?;
        Ok::<_, ApiError>((who, detail))
    }
    .await;
    let (who, detail) = match result {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    mark_entry_read(page, &who, &detail).await;
    let may = EntryMays::asked(page, &who, &detail.entry).await;
    let directory = if may.support {
        support_directory(page, who.facility()).await
    } else {
        Vec::new()
    };
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let entry = &detail.entry;
    let view = EntryPage {
        may_support: may.support,
        directory,
        admin: page.is_admin(),
        token: page.authenticity(),
        done,
        error: error.map(|e| e.message),
        patient_id: who.patient().as_uuid().to_string(),
        entry_id: entry.id.to_string(),
        main: vec![entry_card(entry)],
        replies: detail.replies.iter().map(card).collect(),
        read_by: detail.read_by.iter().map(reader_line).collect(),
        versions: detail.versions.iter().map(version_line).collect(),
        withdrawn: entry.withdrawn_at.is_some(),
        withdrawal_reason: entry.withdrawal_reason.clone().unwrap_or_default(),
        may_write: may.write,
        may_change: may.change,
        version: entry.version,
        category: entry.category.as_str().to_string(),
        priority: entry.priority.as_str().to_string(),
        body: entry.body.clone(),
    };
    page.respond(render(status, &view))
}

#[tracing::instrument(skip_all)]
pub async fn entry(
    page: PageRequest,
    Path((id, entry)): Path<(String, String)>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let done = match query.done.as_deref() {
        Some("replied") => Some("返信しました / Replied"),
        Some("edited") => Some("修正しました（新しい版として保存） / Saved as a new version"),
        _ => None,
    };
    entry_page(&page, &id, &entry, done, None).await
}

#[derive(Deserialize)]
pub struct EditForm {
    expected_version: i32,
    category: String,
    priority: String,
    body: String,
}

#[tracing::instrument(skip_all)]
pub async fn edit(
    page: PageRequest,
    Path((id, entry)): Path<(String, String)>,
    Form(form): Form<EditForm>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let result = async {
        let (patient, entry_id) = entry_ids(&id, &entry)?;
        let me = author::<may::NotebookWrite>(state, user, patient).await?;
        // The page edits the text; what else the entry said stays as it was.
        let reader = authorize::<may::NotebookRead>(state, user, patient).await?;
        let detail = renrakucho_notebook::entry_detail(
            &state.db,
            &state.keyring,
            &reader,
            origin,
            entry_id,
        )
        .await?;
        let content = EntryContent {
            category: form.category.parse().map_err(|_| ApiError::not_found())?,
            priority: form.priority.parse().map_err(|_| ApiError::not_found())?,
            body: EntryBody::parse(&form.body)?,
            vitals: detail.entry.vitals,
            mentions: detail.entry.mentions.clone(),
        };
        match renrakucho_notebook::edit_entry(
            &state.db,
            &state.keyring,
            &me,
            origin,
            entry_id,
            form.expected_version,
            content,
        )
        .await?
        {
            renrakucho_notebook::EditResult::Saved(_) => Ok(()),
            renrakucho_notebook::EditResult::Stale(current) => Err(ApiError::conflict(format!(
                "この記録は他の人が先に修正しました（現在 第{}版）。下の最新の内容を確認してから、もう一度修正してください。あなたの入力: 「{}」 / someone saved a newer version first; your text is shown here so nothing is lost",
                current.version, form.body
            ))),
        }
    }
    .await;
    match result {
        Ok(()) => {
            Redirect::to(&format!("/patients/{id}/entries/{entry}?done=edited")).into_response()
        }
        Err(e) if is_refusal(&e) => failed(e),
        Err(e) => entry_page(&page, &id, &entry, None, Some(e)).await,
    }
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    #[serde(default)]
    reason: String,
}

#[tracing::instrument(skip_all)]
pub async fn withdraw(
    page: PageRequest,
    Path((id, entry)): Path<(String, String)>,
    Form(form): Form<WithdrawForm>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let result = async {
        let (patient, entry_id) = entry_ids(&id, &entry)?;
        let me = author::<may::NotebookWrite>(state, user, patient).await?;
        let reason = Reason::parse(&form.reason)?;
        renrakucho_notebook::withdraw_entry(
            &state.db,
            &state.keyring,
            &me,
            origin,
            entry_id,
            reason,
        )
        .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/patients/{id}/notebook?done=withdrawn")).into_response(),
        Err(e) if is_refusal(&e) => failed(e),
        Err(e) => entry_page(&page, &id, &entry, None, Some(e)).await,
    }
}
