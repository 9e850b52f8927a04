//! The one error type of the crate.

use std::path::PathBuf;

use crate::PdfFont;

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
