//! Finding and loading the Japanese font, and measuring text with it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::raw::FontRef;
use skrifa::string::StringId;
use skrifa::{charmap::Charmap, GlyphId, MetadataProvider};

use crate::{wrap, ExportError};

/// A Japanese font loaded for PDF export. Load it once (a CJK collection is ~20 MB) and share
/// it: cloning is cheap, and only the glyphs a document uses are embedded in it.
#[derive(Clone)]
pub struct PdfFont {
    /// What the PDF writer draws with.
    pub(crate) font: krilla::text::Font,
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

    pub(crate) fn metrics(&self) -> Result<Metrics<'_>, ExportError> {
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
pub(crate) struct Metrics<'a> {
    charmap: Charmap<'a>,
    glyphs: GlyphMetrics<'a>,
}

impl Metrics<'_> {
    /// Advance of one character in ems (a missing glyph is drawn as .notdef, measured as such).
    fn em(&self, c: char) -> f32 {
        let glyph = self.charmap.map(c).unwrap_or(GlyphId::NOTDEF);
        self.glyphs.advance_width(glyph).unwrap_or(1.0)
    }

    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.em(c)).sum::<f32>() * size
    }

    pub(crate) fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        wrap::wrap(text, max, |c| self.em(c) * size)
    }
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
}
