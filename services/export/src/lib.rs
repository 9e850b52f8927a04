//! A patient's contact notebook (連絡帳) as a PDF: the reference copy (参照用の写し) that staff
//! may export for their own facility's records under 第15条. The original stays in each
//! facility's records; every page of the copy says so in its footer.
//!
//! The input is plain data ([`NotebookExport`]), already authorised, decrypted and formatted by
//! the caller: this crate decides nothing about who may export, and formats no dates. It lays the
//! notebook out on A4 pages (Japanese line breaking with 禁則, page breaks inside long entries,
//! "n / N" page numbers) and writes a PDF with a subset of one Japanese font embedded, so the file
//! stays small and reads the same on any machine, and its text can be searched and copied.
//!
//! Nothing here logs: the content is patient data, and errors name fonts and files, never text.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use krilla::color::luma;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Stroke};
use krilla::text::TextDirection;
use krilla::{Document, SerializeSettings};
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::raw::FontRef;
use skrifa::string::StringId;
use skrifa::{charmap::Charmap, GlyphId, MetadataProvider};

mod wrap;

/// What went wrong. Messages name font files, never the notebook's content.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No Japanese font on this machine: the PDF would show empty boxes, so none is made.
    #[error(
        "no Japanese font for the PDF export: {var} is not set and none of {looked} exists; \
         install one with `apt-get install fonts-noto-cjk`, or set {var}=/path/to/font.ttf \
         (or /path/to/collection.ttc#index)",
        var = PdfFont::ENV
    )]
    NoFont {
        /// The well-known paths that were tried.
        looked: String,
    },
    /// The named font file could not be read (missing, unreadable).
    #[error(
        "cannot read the PDF font {}: {source}; install a Japanese font with \
         `apt-get install fonts-noto-cjk`, or set {var} to one",
        .path.display(),
        var = PdfFont::ENV
    )]
    FontUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a font usable here (wrong index, not Japanese, damaged).
    #[error("{} (index {index}) is not a usable Japanese font: {reason}", .path.display())]
    FontInvalid {
        path: PathBuf,
        index: u32,
        reason: String,
    },
    /// The PDF writer failed (a limit of the format, or the font could not be embedded).
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

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

/// A Japanese font loaded for PDF export. Load it once (a CJK collection is ~20 MB) and share
/// it: cloning is cheap, and only the glyphs a document uses are embedded in it.
#[derive(Clone)]
pub struct PdfFont {
    font: krilla::text::Font,
    data: Arc<Vec<u8>>,
    index: u32,
    source: PathBuf,
    family: String,
}

impl fmt::Debug for PdfFont {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfFont")
            .field("source", &self.source)
            .field("index", &self.index)
            .field("family", &self.family)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl PdfFont {
    /// The environment variable naming the font: a path, or `path#index` for a collection.
    pub const ENV: &'static str = "RENRAKUCHO_PDF_FONT";

    /// Where Debian and Ubuntu packages put Japanese gothic fonts, best first, with the face
    /// index inside a collection. Noto Sans CJK's collection holds JP, KR, SC, TC and HK faces;
    /// index 0 is JP, whose kanji forms are the Japanese ones.
    pub const WELL_KNOWN: &'static [(&'static str, u32)] = &[
        // fonts-noto-cjk
        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 0),
        // fonts-ipaexfont-gothic
        ("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf", 0),
        // fonts-ipafont-gothic
        ("/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf", 0),
        ("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf", 0),
        // the alternatives link that any Japanese gothic font package may provide
        ("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf", 0),
        // fonts-takao-gothic, fonts-vlgothic
        ("/usr/share/fonts/truetype/takao-gothic/TakaoPGothic.ttf", 0),
        (
            "/usr/share/fonts/truetype/vlgothic/VL-PGothic-Regular.ttf",
            0,
        ),
        // serif faces, still better than no Japanese at all
        ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 0),
        ("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf", 0),
    ];

    /// Finds a Japanese font on this machine: [`Self::ENV`] if set (a path, or `path#index` for a
    /// TrueType/OpenType collection; an unusable one is an error, not skipped), else the first
    /// usable entry of [`Self::WELL_KNOWN`]. When there is none, the error names
    /// `apt-get install fonts-noto-cjk`.
    pub fn discover() -> Result<Self, ExportError> {
        discover_from(std::env::var_os(Self::ENV), Self::WELL_KNOWN)
    }

    /// Loads face `index` of the font file at `path` (0 for a plain .ttf/.otf).
    pub fn from_file(path: &Path, index: u32) -> Result<Self, ExportError> {
        let data = std::fs::read(path).map_err(|source| ExportError::FontUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load(data, index, path.to_path_buf())
    }

    /// Loads face `index` of a font held in memory (one shipped inside a binary, say).
    pub fn from_bytes(data: Vec<u8>, index: u32) -> Result<Self, ExportError> {
        Self::load(data, index, PathBuf::from("<memory>"))
    }

    fn load(data: Vec<u8>, index: u32, source: PathBuf) -> Result<Self, ExportError> {
        let invalid = |reason: String| ExportError::FontInvalid {
            path: source.clone(),
            index,
            reason,
        };
        let family = {
            let face = FontRef::from_index(&data, index).map_err(|e| invalid(e.to_string()))?;
            let charmap = face.charmap();
            // Kana, a kanji and the ideographic full stop: a Latin-only or Chinese-only face
            // would print boxes or wrong glyphs for a Japanese notebook.
            if let Some(c) = ['あ', 'ア', '連', '。']
                .into_iter()
                .find(|c| charmap.map(*c).is_none())
            {
                return Err(invalid(format!("it has no glyph for {c:?}")));
            }
            face.localized_strings(StringId::FAMILY_NAME)
                .english_or_first()
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        let data = Arc::new(data);
        let font = krilla::text::Font::new(data.clone().into(), index)
            .ok_or_else(|| invalid("the PDF writer cannot read it".to_string()))?;
        Ok(Self {
            font,
            data,
            index,
            source,
            family,
        })
    }

    /// The file the font was loaded from (`<memory>` for [`Self::from_bytes`]).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The face index inside a collection.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The font's family name, e.g. "Noto Sans CJK JP".
    pub fn family_name(&self) -> &str {
        &self.family
    }

    fn metrics(&self) -> Result<Metrics<'_>, ExportError> {
        let face =
            FontRef::from_index(&self.data, self.index).map_err(|e| ExportError::FontInvalid {
                path: self.source.clone(),
                index: self.index,
                reason: e.to_string(),
            })?;
        Ok(Metrics {
            charmap: face.charmap(),
            // Size 1: advances come out in ems, multiplied by the font size where used.
            glyphs: face.glyph_metrics(Size::new(1.0), LocationRef::default()),
        })
    }
}

/// [`PdfFont::discover`] with its inputs explicit, so tests need not change the environment.
fn discover_from(
    setting: Option<OsString>,
    candidates: &[(&str, u32)],
) -> Result<PdfFont, ExportError> {
    if let Some(setting) = setting.filter(|s| !s.is_empty()) {
        let (path, index) = parse_setting(setting);
        return PdfFont::from_file(&path, index);
    }
    for (path, index) in candidates {
        let path = Path::new(path);
        if path.exists() {
            if let Ok(font) = PdfFont::from_file(path, *index) {
                return Ok(font);
            }
        }
    }
    Err(ExportError::NoFont {
        looked: candidates
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `path#index` → (path, index); anything else is a path with index 0 (a `#` in a file name
/// survives unless what follows it is a number).
fn parse_setting(setting: OsString) -> (PathBuf, u32) {
    if let Some(s) = setting.to_str() {
        if let Some((path, index)) = s.rsplit_once('#') {
            if let Ok(index) = index.parse() {
                return (PathBuf::from(path), index);
            }
        }
    }
    (PathBuf::from(setting), 0)
}

/// Glyph advances of the loaded font, for line breaking and right-aligning.
struct Metrics<'a> {
    charmap: Charmap<'a>,
    glyphs: GlyphMetrics<'a>,
}

impl Metrics<'_> {
    /// Advance of one character in ems (a missing glyph is drawn as .notdef, measured as such).
    fn em(&self, c: char) -> f32 {
        let glyph = self.charmap.map(c).unwrap_or(GlyphId::NOTDEF);
        self.glyphs.advance_width(glyph).unwrap_or(1.0)
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.em(c)).sum::<f32>() * size
    }

    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        wrap::wrap(text, max, |c| self.em(c) * size)
    }
}

// Geometry, in PDF points (1/72 in). A4 portrait, 15 mm margins.
const MM: f32 = 72.0 / 25.4;
const PAGE_W: f32 = 210.0 * MM;
const PAGE_H: f32 = 297.0 * MM;
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
enum Op {
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

/// Control characters have no glyph: tabs become spaces, the rest go. Newlines are kept.
fn multi_line(text: &str) -> String {
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
fn one_line(text: &str) -> String {
    multi_line(text).replace('\n', " ")
}

fn layout(export: &NotebookExport, metrics: &Metrics<'_>) -> Vec<Vec<Op>> {
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
    layout.pages
}

fn gray_fill(gray: u8) -> Fill {
    Fill {
        paint: luma::Color::new(gray).into(),
        opacity: NormalizedF32::ONE,
        rule: FillRule::default(),
    }
}

/// Writes the laid-out pages, adding the footer (note and "n / N") to each.
fn render(
    pages: Vec<Vec<Op>>,
    title: &str,
    font: &PdfFont,
    metrics: &Metrics<'_>,
) -> Result<Vec<u8>, ExportError> {
    let settings = SerializeSettings {
        // No structure tree is built, so do not announce one.
        enable_tagging: false,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    document.set_metadata(
        Metadata::new()
            .title(one_line(title))
            .language("ja".to_string())
            .creator("Renrakucho".to_string()),
    );
    let total = pages.len();
    let page_settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| ExportError::Pdf("invalid page size".to_string()))?;
    for (n, mut ops) in pages.into_iter().enumerate() {
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
        let number = format!("{} / {}", n + 1, total);
        ops.push(Op::Text {
            x: PAGE_W - MARGIN - metrics.width(&number, SMALL.size),
            baseline: footer_baseline,
            size: SMALL.size,
            gray: SMALL.gray,
            text: number,
        });

        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    baseline,
                    size,
                    gray,
                    text,
                } => {
                    surface.set_stroke(None);
                    surface.set_fill(Some(gray_fill(gray)));
                    surface.draw_text(
                        Point::from_xy(x, baseline),
                        font.font.clone(),
                        size,
                        &text,
                        false,
                        TextDirection::LeftToRight,
                    );
                }
                Op::Rule {
                    x1,
                    x2,
                    y,
                    width,
                    gray,
                } => {
                    let mut path = PathBuilder::new();
                    path.move_to(x1, y);
                    path.line_to(x2, y);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: luma::Color::new(gray).into(),
                            width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| {
        // Krilla's errors may carry a font or glyph, never document text; keep only the kind.
        ExportError::Pdf(match e {
            krilla::error::KrillaError::Font(_, reason) => format!("embedding the font: {reason}"),
            krilla::error::KrillaError::Limit(_) => "a limit of the PDF format was hit".into(),
            _ => "internal error of the PDF writer".into(),
        })
    })
}

/// Renders `export` as an A4 PDF with `font` (subset-embedded). Deterministic: the same input
/// and font give the same bytes.
pub fn notebook_pdf(export: &NotebookExport, font: &PdfFont) -> Result<Vec<u8>, ExportError> {
    let metrics = font.metrics()?;
    let pages = layout(export, &metrics);
    render(pages, &export.title, font, &metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server loads the font once and shares it between requests.
    #[test]
    fn font_is_shareable() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<PdfFont>();
    }

    #[test]
    fn setting_with_index() {
        assert_eq!(
            parse_setting("/f/a.ttc#2".into()),
            (PathBuf::from("/f/a.ttc"), 2)
        );
        assert_eq!(
            parse_setting("/f/a.ttf".into()),
            (PathBuf::from("/f/a.ttf"), 0)
        );
        assert_eq!(
            parse_setting("/f/#x.ttf".into()),
            (PathBuf::from("/f/#x.ttf"), 0)
        );
    }

    #[test]
    fn missing_setting_file_is_an_error_not_a_fallback() {
        let err =
            discover_from(Some("/nonexistent/font.ttc#0".into()), PdfFont::WELL_KNOWN).unwrap_err();
        assert!(matches!(err, ExportError::FontUnreadable { .. }), "{err}");
        assert!(err.to_string().contains("apt-get install fonts-noto-cjk"));
    }

    #[test]
    fn no_font_anywhere_names_the_package() {
        let err = discover_from(None, &[("/nonexistent/a.ttf", 0)]).unwrap_err();
        assert!(matches!(err, ExportError::NoFont { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("apt-get install fonts-noto-cjk"), "{msg}");
        assert!(msg.contains("/nonexistent/a.ttf"), "{msg}");
        assert!(msg.contains(PdfFont::ENV), "{msg}");
    }

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
