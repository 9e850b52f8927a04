//! Drawing a notebook copy as a PDF: the Japanese font is found once per process, the drawing
//! runs off the async threads.

use std::sync::OnceLock;

use renrakucho_http::error::ApiError;
use renrakucho_notebook::NotebookCopy;
use renrakucho_pdf::{notebook_pdf, ExportEntry, NotebookExport, PdfFont};

static FONT: OnceLock<Result<PdfFont, String>> = OnceLock::new();

/// The machine's Japanese font, or what to install.
pub fn font() -> Result<PdfFont, String> {
    FONT.get_or_init(|| PdfFont::discover().map_err(|e| e.to_string()))
        .clone()
}

fn local(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(time::macros::offset!(+9))
        .format(&f)
        .unwrap_or_default()
}

/// The PDF of a copy, exported by `by` (facility and person).
pub async fn pdf(copy: NotebookCopy, by: String, font: PdfFont) -> Result<Vec<u8>, ApiError> {
    let model = NotebookExport {
        title: "連絡帳（参照用の写し）".into(),
        patient_name: copy.patient.name,
        patient_kana: copy.patient.kana,
        birth_date: copy.patient.birth_date,
        sex: copy.patient.sex,
        care_level: copy.patient.care_level,
        exported_by: by,
        exported_at: local(copy.exported_at),
        entries: copy
            .entries
            .iter()
            .filter(|e| e.entry.withdrawn_at.is_none())
            .map(|e| ExportEntry {
                created_at: local(e.entry.created_at),
                category: e.entry.category.label_ja().to_string(),
                priority: e.entry.priority.label_ja().to_string(),
                author: format!(
                    "{}（{}）{}",
                    e.entry.author_name,
                    e.entry
                        .author_profession
                        .parse::<renrakucho_core::Profession>()
                        .map(|p| p.label_ja())
                        .unwrap_or_default(),
                    e.entry.facility_name.clone().unwrap_or_default()
                ),
                body: e.entry.body.clone(),
                vitals: e.entry.vitals.map(|v| v.summary()),
                reply_to: e.entry.reply_to.map(|r| {
                    copy.entries
                        .iter()
                        .find(|p| p.entry.id == r)
                        .map(|p| format!("{} の記録", local(p.entry.created_at)))
                        .unwrap_or_else(|| "（取り下げられた記録）".into())
                }),
                edited: (e.versions.len() > 1).then(|| {
                    format!(
                        "{}回修正（最終 {}）",
                        e.versions.len() - 1,
                        local(e.entry.updated_at)
                    )
                }),
                attachments: e
                    .entry
                    .attachments
                    .iter()
                    .map(|a| a.file_name.clone())
                    .collect(),
            })
            .collect(),
    };
    tokio::task::spawn_blocking(move || notebook_pdf(&model, &font))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "drawing a notebook PDF failed");
            ApiError::internal()
        })
}
