//! The document model: a notebook as display text, as the caller hands it over, and how that
//! text is cleaned of what no font can draw.

use std::fmt;

/// A notebook to export: the header fields and the entries, all as display text.
#[derive(Clone, Default, PartialEq)]
pub struct NotebookExport {
    /// e.g. "連絡帳（参照用の写し）"; also the PDF's document title.
    pub title: String,
    pub patient_name: String,
    pub patient_kana: String,
    pub birth_date: String,
    pub sex: String,
    pub care_level: String,
    /// Who exported, e.g. "泉中央在宅クリニック 佐藤 健一（医師）".
    pub exported_by: String,
    /// When, as the caller formats it, e.g. "2026-11-25 14:03".
    pub exported_at: String,
    /// Oldest first, as a notebook is read.
    pub entries: Vec<ExportEntry>,
}

/// Content is never printed by `Debug`, so a stray `{:?}` in a log line leaks no patient data.
impl fmt::Debug for NotebookExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotebookExport")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// One notebook entry, as display text.
#[derive(Clone, Default, PartialEq)]
pub struct ExportEntry {
    pub created_at: String,
    pub category: String,
    pub priority: String,
    /// Name, profession and facility of the writer.
    pub author: String,
    /// Free text; may be long and contain newlines.
    pub body: String,
    /// e.g. "体温 36.8℃ / 血圧 128/76 mmHg / 脈拍 72 / SpO2 97% / 体重 48.2 kg".
    pub vitals: Option<String>,
    /// A short reference to the entry this one answers.
    pub reply_to: Option<String>,
    /// e.g. "2回修正（最終 2026-11-24 10:00）".
    pub edited: Option<String>,
    /// File names only; the files themselves are not part of the copy.
    pub attachments: Vec<String>,
}

/// Content is never printed by `Debug` (see [`NotebookExport`]).
impl fmt::Debug for ExportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportEntry")
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

/// Control characters have no glyph: tabs become spaces, the rest go. Newlines are kept.
pub(crate) fn multi_line(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter_map(|c| match c {
            '\r' => Some('\n'),
            '\t' => Some(' '),
            '\n' => Some('\n'),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// For fields that are one line: newlines become spaces.
pub(crate) fn one_line(text: &str) -> String {
    multi_line(text).replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(multi_line("a\r\nb\rc\td\u{7}e"), "a\nb\nc de");
        assert_eq!(one_line("a\nb"), "a b");
    }

    #[test]
    fn debug_shows_no_content() {
        let export = NotebookExport {
            patient_name: "山田 花子".into(),
            entries: vec![ExportEntry {
                body: "秘密".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let shown = format!("{export:?} {:?}", export.entries[0]);
        assert!(
            !shown.contains("山田") && !shown.contains("秘密"),
            "{shown}"
        );
    }
}
