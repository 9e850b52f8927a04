//! Writing from the notebook page: the multipart form (text fields and files) read and
//! checked, the files stored and the entry (or reply) posted; errors shown on the page with
//! what was entered.

use super::*;

fn measured<'a>(
    raw: &'a str,
    unit: &'a str,
    field: &'static str,
) -> Result<Option<renrakucho_core::notebook::Measured<'a>>, InvalidValue> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let value: f64 = raw
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' => '.',
            c => c,
        })
        .collect::<String>()
        .parse()
        .map_err(|_| InvalidValue::new(field, "数値で入力してください / enter a number"))?;
    Ok(Some(renrakucho_core::notebook::Measured { value, unit }))
}

fn vitals_from(form: &WriteForm) -> Result<Option<renrakucho_core::Vitals>, InvalidValue> {
    let input = VitalsInput {
        temperature: measured(&form.temperature, "℃", "temperature")?,
        systolic: measured(&form.systolic, "mmHg", "systolic")?,
        diastolic: measured(&form.diastolic, "mmHg", "diastolic")?,
        pulse: measured(&form.pulse, "bpm", "pulse")?,
        spo2: measured(&form.spo2, "%", "spo2")?,
        weight: measured(&form.weight, "kg", "weight")?,
    };
    let any = input.temperature.is_some()
        || input.systolic.is_some()
        || input.diastolic.is_some()
        || input.pulse.is_some()
        || input.spo2.is_some()
        || input.weight.is_some();
    if any {
        input.parse().map(Some)
    } else {
        Ok(None)
    }
}

/// The write form as posted: its text fields (in order: `mentions` repeats) and files.
struct EntryUpload {
    fields: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
}

impl EntryUpload {
    /// Reads the multipart form; a file over the upload limit is refused (413) unread.
    async fn read(mut multipart: Multipart, limit: usize) -> Result<Self, ApiError> {
        let too_large = || renrakucho_api::patients::too_large(limit);
        let mut upload = EntryUpload {
            fields: Vec::new(),
            files: Vec::new(),
        };
        while let Some(field) = multipart.next_field().await.map_err(|_| too_large())? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "files" {
                let file_name = field.file_name().unwrap_or_default().to_string();
                let bytes = field.bytes().await.map_err(|_| too_large())?;
                if bytes.len() > limit {
                    return Err(too_large());
                }
                if !bytes.is_empty() {
                    upload.files.push((file_name, bytes.to_vec()));
                }
            } else if let Ok(text) = field.text().await {
                upload.fields.push((name, text));
            }
        }
        renrakucho_http::input::multipart_fields(
            upload.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        Ok(upload)
    }

    fn get(&self, key: &str) -> String {
        self.fields
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The form as entered, to show again with an error.
    fn form(&self) -> WriteForm {
        WriteForm {
            category: self.get("category"),
            priority: self.get("priority"),
            body: self.get("body"),
            temperature: self.get("temperature"),
            systolic: self.get("systolic"),
            diastolic: self.get("diastolic"),
            pulse: self.get("pulse"),
            spo2: self.get("spo2"),
            weight: self.get("weight"),
        }
    }

    /// The facilities mentioned (IDs that do not parse are left out).
    fn mentions(&self) -> Vec<FacilityId> {
        self.fields
            .iter()
            .filter(|(n, _)| n == "mentions")
            .filter_map(|(_, v)| Uuid::parse_str(v).ok())
            .map(FacilityId::from_uuid)
            .collect()
    }

    /// The entry's parent, for a reply.
    fn reply_to(&self) -> Result<Option<Uuid>, ApiError> {
        let raw = self.get("reply_to");
        if raw.is_empty() {
            return Ok(None);
        }
        Uuid::parse_str(&raw)
            .map(Some)
            .map_err(|_| ApiError::not_found())
    }
}

impl WriteForm {
    /// What the form says, checked.
    fn content(&self, mentions: Vec<FacilityId>) -> Result<EntryContent, ApiError> {
        Ok(EntryContent {
            category: self.category.parse().map_err(|_| {
                InvalidValue::new("category", "記録の種類を選んでください / choose a category")
            })?,
            priority: self.priority.parse().map_err(|_| {
                InvalidValue::new("priority", "重要度を選んでください / choose a priority")
            })?,
            body: EntryBody::parse(&self.body)?,
            vitals: vitals_from(self)?,
            mentions,
        })
    }
}

/// Stores the files, then posts the entry naming them; the patient and the parent, if a reply.
async fn post_upload(
    page: &PageRequest,
    id: &str,
    form: &WriteForm,
    upload: EntryUpload,
) -> Result<(PatientId, Option<Uuid>), ApiError> {
    let state = &page.state;
    let patient = patient_id(id)?;
    let me = author::<may::NotebookWrite>(state, &page.user, patient).await?;
    let content = form.content(upload.mentions())?;
    let reply_to = upload.reply_to()?;
    let mut attachments = Vec::new();
    for (name, bytes) in upload.files {
        let uploaded = renrakucho_notebook::upload_attachment(
            &state.db,
            &state.keyring,
            &state.files,
            me.allowed(),
            page.origin(),
            renrakucho_notebook::FileUpload { name: &name, bytes },
            state.care.upload_limit_bytes,
        )
        .await?;
        attachments.push(uploaded.id);
    }
    let new = NewEntryInput {
        content,
        reply_to,
        attachments,
    };
    renrakucho_notebook::post_entry(&state.db, &state.keyring, &me, page.origin(), new).await?;
    Ok((patient, reply_to))
}

/// Posts an entry (or a reply) from the multipart form, with its files.
#[tracing::instrument(skip_all)]
pub async fn post(page: PageRequest, Path(id): Path<String>, multipart: Multipart) -> Response {
    let upload = match EntryUpload::read(multipart, page.state.care.upload_limit_bytes).await {
        Ok(upload) => upload,
        Err(e) => return failed(e),
    };
    let form = upload.form();
    match post_upload(&page, &id, &form, upload).await {
        Ok((patient, Some(parent))) => Redirect::to(&format!(
            "/patients/{}/entries/{parent}?done=replied",
            patient.as_uuid()
        ))
        .into_response(),
        Ok((patient, None)) => Redirect::to(&format!(
            "/patients/{}/notebook?done=posted",
            patient.as_uuid()
        ))
        .into_response(),
        Err(e) if is_refusal(&e) => failed(e),
        Err(e) => {
            let status = e.status;
            let query = NotebookQuery::default();
            let mut shown = notebook_page(&page, &id, query, Shown::Timeline, form, Some(e)).await;
            if shown.status().is_success() {
                *shown.status_mut() = status;
            }
            shown
        }
    }
}
