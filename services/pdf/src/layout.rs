//! Laying the notebook out on A4 pages: the header, then entry after entry, flowed down pages
//! with a running header and "continued" lines where a page breaks inside an entry.

use crate::font::Metrics;
use crate::model::{multi_line, one_line, ExportEntry, NotebookExport};

// Geometry, in PDF points (1/72 in). A4 portrait, 15 mm margins.
const MM: f32 = 72.0 / 25.4;
pub(crate) const PAGE_W: f32 = 210.0 * MM;
pub(crate) const PAGE_H: f32 = 297.0 * MM;
const MARGIN: f32 = 15.0 * MM;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// The footer (a rule and one line of 8 pt) sits in the bottom 20 pt above the margin.
const CONTENT_BOTTOM: f32 = PAGE_H - MARGIN - 20.0;
/// Pages after the first begin with a running header (title and patient) of the same height.
const RUNNING_HEADER_H: f32 = 20.0;

const FOOTER_NOTE: &str = "参照用の写しです。原本は各施設の記録です（第15条）";

/// Text size, line pitch and grey level (0 black … 255 white).
#[derive(Clone, Copy)]
struct Style {
    size: f32,
    leading: f32,
    gray: u8,
}

const TITLE: Style = Style {
    size: 16.0,
    leading: 26.0,
    gray: 0,
};
const FIELD: Style = Style {
    size: 10.0,
    leading: 15.0,
    gray: 0,
};
const META: Style = Style {
    size: 10.0,
    leading: 15.0,
    gray: 0,
};
const BODY: Style = Style {
    size: 10.5,
    leading: 16.5,
    gray: 0,
};
const DETAIL: Style = Style {
    size: 9.0,
    leading: 13.5,
    gray: 40,
};
const SMALL: Style = Style {
    size: 8.0,
    leading: 12.0,
    gray: 90,
};
/// Labels (記入者, バイタル …) are grey and in a column this many ems wide.
const LABEL_GRAY: u8 = 110;
const LABEL_EMS: f32 = 5.0;

/// One thing drawn on a page, in page coordinates (origin top left, y down).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Text {
        x: f32,
        baseline: f32,
        size: f32,
        gray: u8,
        text: String,
    },
    Rule {
        x1: f32,
        x2: f32,
        y: f32,
        width: f32,
        gray: u8,
    },
}

/// Flows lines down pages, starting a new page when the next line does not fit.
struct Layout<'m> {
    metrics: &'m Metrics<'m>,
    pages: Vec<Vec<Op>>,
    /// Top of the next line.
    y: f32,
    /// Printed at the top of every page after the first, so a loose page still says whose it is.
    running_header: String,
    /// While an entry is being laid out, its date: a page break inside it says "continued".
    continuing: Option<String>,
}

impl<'m> Layout<'m> {
    fn new(metrics: &'m Metrics<'m>, running_header: String) -> Self {
        let mut layout = Self {
            metrics,
            pages: Vec::new(),
            y: MARGIN,
            running_header,
            continuing: None,
        };
        layout.new_page();
        layout
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
        if self.pages.len() > 1 {
            let header = self
                .metrics
                .wrap(&self.running_header, SMALL.size, CONTENT_W)
                .into_iter()
                .next()
                .unwrap_or_default();
            self.push(Op::Text {
                x: MARGIN,
                baseline: MARGIN + 8.0,
                size: SMALL.size,
                gray: SMALL.gray,
                text: header,
            });
            self.rule(MARGIN + 12.0, 0.5, 150);
            self.y = MARGIN + RUNNING_HEADER_H;
            if let Some(date) = self.continuing.clone() {
                self.line(MARGIN, format!("（{date} の記録の続き）"), SMALL);
            }
        }
    }

    fn rule(&mut self, y: f32, width: f32, gray: u8) {
        self.push(Op::Rule {
            x1: MARGIN,
            x2: PAGE_W - MARGIN,
            y,
            width,
            gray,
        });
    }

    /// Starts a new page unless `height` more fits on this one.
    fn room(&mut self, height: f32) {
        if self.y + height > CONTENT_BOTTOM {
            self.new_page();
        }
    }

    fn baseline(&self, style: Style) -> f32 {
        // The ideographic em box centred in the line: its centre is ~0.38 em above the baseline.
        self.y + style.leading / 2.0 + style.size * 0.38
    }

    fn line(&mut self, x: f32, text: String, style: Style) {
        self.room(style.leading);
        if !text.is_empty() {
            let baseline = self.baseline(style);
            self.push(Op::Text {
                x,
                baseline,
                size: style.size,
                gray: style.gray,
                text,
            });
        }
        self.y += style.leading;
    }

    /// Free text over the full width: each newline starts a new line, an empty line is kept.
    fn paragraphs(&mut self, text: &str, style: Style) {
        for paragraph in text.split('\n') {
            for line in self.metrics.wrap(paragraph, style.size, CONTENT_W) {
                self.line(MARGIN, line, style);
            }
        }
    }

    /// A grey label in a fixed column, the value wrapped beside it.
    fn labeled(&mut self, label: &str, value: &str, style: Style) {
        let indent = LABEL_EMS * style.size;
        let lines = self.metrics.wrap(value, style.size, CONTENT_W - indent);
        for (i, line) in lines.into_iter().enumerate() {
            self.room(style.leading);
            if i == 0 && !label.is_empty() {
                let baseline = self.baseline(style);
                self.push(Op::Text {
                    x: MARGIN,
                    baseline,
                    size: style.size,
                    gray: LABEL_GRAY,
                    text: label.to_string(),
                });
            }
            self.line(MARGIN + indent, line, style);
        }
    }

    fn header(&mut self, export: &NotebookExport) {
        self.paragraphs(&one_line(&export.title), TITLE);
        self.y += 4.0;
        let name = if export.patient_kana.trim().is_empty() {
            one_line(&export.patient_name)
        } else {
            format!(
                "{}（{}）",
                one_line(&export.patient_name),
                one_line(&export.patient_kana)
            )
        };
        self.labeled("患者氏名", &name, FIELD);
        self.labeled("生年月日", &one_line(&export.birth_date), FIELD);
        self.labeled(
            "性別",
            &format!(
                "{}　　要介護度　{}",
                one_line(&export.sex),
                one_line(&export.care_level)
            ),
            FIELD,
        );
        self.labeled("出力者", &one_line(&export.exported_by), FIELD);
        self.labeled("出力日時", &one_line(&export.exported_at), FIELD);
        self.labeled(
            "記録件数",
            &format!("{} 件（古い順）", export.entries.len()),
            FIELD,
        );
        self.y += 4.0;
        self.rule(self.y, 1.2, 0);
        self.y += 8.0;
    }

    fn entry(&mut self, entry: &ExportEntry) {
        // Keep the date line with the author and the first line of the body.
        self.continuing = None;
        self.room(META.leading + DETAIL.leading + BODY.leading);
        let date = one_line(&entry.created_at);
        self.paragraphs(
            &format!(
                "{date}　【{}】　優先度：{}",
                one_line(&entry.category),
                one_line(&entry.priority)
            ),
            META,
        );
        self.continuing = Some(date);
        self.labeled("記入者", &one_line(&entry.author), DETAIL);
        self.y += 2.0;
        let body = multi_line(&entry.body);
        if !body.trim().is_empty() {
            self.paragraphs(body.trim_end(), BODY);
        }
        self.y += 2.0;
        if let Some(vitals) = entry.vitals.as_deref().filter(|v| !v.trim().is_empty()) {
            self.labeled("バイタル", &one_line(vitals), DETAIL);
        }
        if let Some(reply) = entry.reply_to.as_deref().filter(|v| !v.trim().is_empty()) {
            self.labeled("返信先", &one_line(reply), DETAIL);
        }
        if let Some(edited) = entry.edited.as_deref().filter(|v| !v.trim().is_empty()) {
            self.labeled("修正", &one_line(edited), DETAIL);
        }
        for (i, name) in entry.attachments.iter().enumerate() {
            self.labeled(if i == 0 { "添付" } else { "" }, &one_line(name), DETAIL);
        }
        self.continuing = None;
        self.y += 4.0;
        if self.y < CONTENT_BOTTOM {
            self.rule(self.y, 0.5, 170);
        }
        self.y += 6.0;
    }
}

pub(crate) fn layout(export: &NotebookExport, metrics: &Metrics<'_>) -> Vec<Vec<Op>> {
    let running = format!(
        "{}　{} 様",
        one_line(&export.title),
        one_line(&export.patient_name)
    );
    let mut layout = Layout::new(metrics, running);
    layout.header(export);
    if export.entries.is_empty() {
        layout.paragraphs("記録はありません。", BODY);
    }
    for entry in &export.entries {
        layout.entry(entry);
    }
    let mut pages = layout.pages;
    let total = pages.len();
    for (n, ops) in pages.iter_mut().enumerate() {
        footer(ops, n + 1, total, metrics);
    }
    pages
}

/// The footer of page `n` of `total`: a rule, the note that this is a copy, and "n / N".
fn footer(ops: &mut Vec<Op>, n: usize, total: usize, metrics: &Metrics<'_>) {
    let footer_baseline = PAGE_H - MARGIN - 2.0;
    ops.push(Op::Rule {
        x1: MARGIN,
        x2: PAGE_W - MARGIN,
        y: PAGE_H - MARGIN - 13.0,
        width: 0.5,
        gray: 150,
    });
    ops.push(Op::Text {
        x: MARGIN,
        baseline: footer_baseline,
        size: SMALL.size,
        gray: SMALL.gray,
        text: FOOTER_NOTE.to_string(),
    });
    let number = format!("{n} / {total}");
    ops.push(Op::Text {
        x: PAGE_W - MARGIN - metrics.width(&number, SMALL.size),
        baseline: footer_baseline,
        size: SMALL.size,
        gray: SMALL.gray,
        text: number,
    });
}
