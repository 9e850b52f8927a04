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
//!
//! The modules follow the way from data to file: [`NotebookExport`] (`model`), the font that
//! measures and draws it (`font`), line breaking (`wrap`), pages (`layout`), the PDF (`render`).

mod error;
mod font;
mod layout;
mod model;
mod render;
mod wrap;

pub use error::ExportError;
pub use font::PdfFont;
pub use model::{ExportEntry, NotebookExport};

/// Renders `export` as an A4 PDF with `font` (subset-embedded). Deterministic: the same input
/// and font give the same bytes.
pub fn notebook_pdf(export: &NotebookExport, font: &PdfFont) -> Result<Vec<u8>, ExportError> {
    let metrics = font.metrics()?;
    let pages = layout::layout(export, &metrics);
    render::render(pages, &export.title, font)
}
