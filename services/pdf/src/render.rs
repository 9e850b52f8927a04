//! Drawing laid-out pages into a PDF with krilla, the font subset-embedded.

use krilla::color::luma;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Stroke};
use krilla::surface::Surface;
use krilla::text::TextDirection;
use krilla::{Document, SerializeSettings};

use crate::layout::{Op, PAGE_H, PAGE_W};
use crate::model::one_line;
use crate::{ExportError, PdfFont};

fn gray_fill(gray: u8) -> Fill {
    Fill {
        paint: luma::Color::new(gray).into(),
        opacity: NormalizedF32::ONE,
        rule: FillRule::default(),
    }
}

/// Writes the laid-out pages (footers included) as a PDF titled `title`.
pub(crate) fn render(
    pages: Vec<Vec<Op>>,
    title: &str,
    font: &PdfFont,
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
    let page_settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| ExportError::Pdf("invalid page size".to_string()))?;
    for ops in pages {
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        for op in ops {
            draw(&mut surface, op, font);
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

/// Draws one text run or rule on a page.
fn draw(surface: &mut Surface<'_>, op: Op, font: &PdfFont) {
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
