//! What every uploaded file goes through before it is sealed and stored.
//!
//! Staff attach photos and PDFs from their phones. A phone photo carries far more than the
//! picture: EXIF with the GPS position of the patient's home, the phone's model and serial,
//! XMP, comments, an embedded preview. [`process`] therefore never stores a photo as sent: it
//! tells the kind from the content ([`sniff`], never the name), refuses anything that is not a
//! JPEG, PNG or PDF, decodes photos completely (with limits on each side and on the pixel count
//! checked against the header before any pixel buffer is allocated, so a decompression bomb
//! costs nothing; [`precheck`] runs the same checks alone, for a caller to refuse before it
//! waits for a turn to decode), turns them upright by
//! their EXIF orientation, and encodes the pixels again. Only the pixels survive: no EXIF, no
//! GPS, no XMP, no ICC profile, no comment or text chunk. Every photo also gets a small JPEG
//! thumbnail made from the upright picture.
//!
//! PDFs are stored as sent, after a check that they are whole (`%PDF-` at the start, `%%EOF`
//! near the end).
//!
//! HEIC (an iPhone's default "High Efficiency" format) is refused with a message that tells the
//! user how to switch the camera to 「互換性優先」 (Most Compatible): decoding it needs libheif
//! 1.17 or later for the maintained `libheif-rs`, and Debian 12 ships 1.15.
//!
//! Decoding a 12-megapixel photo takes a noticeable fraction of a second of CPU: call
//! [`process`] from a blocking task (`tokio::task::spawn_blocking`), not on the async runtime.

use image::ImageFormat;

use crate::{sniff, MediaKind};

mod complete;
mod photo;
#[cfg(test)]
mod tests;

use photo::{header, photo};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 320;

/// The JPEG quality photos are stored at: visually the same as a phone's own output.
pub const JPEG_QUALITY: u8 = 90;

/// The JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 80;

/// How far from the end of a PDF its `%%EOF` may be (writers may leave a little after it).
const PDF_EOF_WINDOW: usize = 1024;

/// The most that one upload may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The size of the file as uploaded.
    pub max_bytes: usize,
    /// Width × height of a photo, read from its header before it is decoded.
    pub max_pixels: u64,
    /// The width and the height of a photo, each, read from its header before it is decoded. A
    /// picture of 1 × 49 000 000 pixels is under the pixel limit, fits in a 95 KB PNG and costs
    /// a minute of CPU to decode and scale: no photo is that long.
    pub max_side: u32,
}

impl Default for Limits {
    /// 20 MB, 50 megapixels and 20 000 pixels a side: a phone photo is 2–8 MB and at most 48
    /// megapixels (8 000 × 6 000), a phone's panorama about 16 000 pixels wide.
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_side: 20_000,
        }
    }
}

/// An upload made ready to be sealed and stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Processed {
    /// What is stored: a HEIC would become a JPEG (it is refused for now).
    pub kind: MediaKind,
    /// What to store. For photos: the upright pixels encoded again, with no metadata at all.
    pub bytes: Vec<u8>,
    /// A JPEG whose longest side is at most [`THUMBNAIL_MAX_SIDE`]; photos only.
    pub thumbnail: Option<Vec<u8>>,
    /// Of the upright photo; `None` for PDFs.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl std::fmt::Debug for Processed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processed")
            .field("kind", &self.kind)
            .field("bytes", &self.bytes.len())
            .field("thumbnail", &self.thumbnail.as_ref().map(Vec::len))
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Why an upload was refused. The message is shown to the care worker on their phone as it
/// is: Japanese, then English, in plain words, saying what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("ファイルが空です。もう一度選んで送ってください / the file is empty; please choose it again")]
    Empty,
    #[error(
        "ファイルが大きすぎます（{}MBまで） / the file is too large ({} MB at most)",
        megabytes(.max_bytes),
        megabytes(.max_bytes)
    )]
    TooLarge { size: usize, max_bytes: usize },
    #[error(
        "この種類のファイルは送れません。写真（JPEG・PNG）かPDFを送ってください / \
         this kind of file cannot be sent; please send a photo (JPEG or PNG) or a PDF"
    )]
    Unsupported,
    #[error(
        "HEIC形式の写真は送れません。iPhoneの「設定」→「カメラ」→「フォーマット」で「互換性優先」を選んでから撮り直すか、JPEGで送ってください / \
         HEIC photos cannot be sent; on the iPhone choose Settings → Camera → Formats → \
         \"Most Compatible\" and take the photo again, or send it as a JPEG"
    )]
    Heic,
    #[error(
        "ファイルが壊れているか、途中までしか届いていません。もう一度送ってください / \
         the file is damaged or did not arrive completely; please send it again"
    )]
    Corrupt,
    #[error(
        "写真の画素数が多すぎます（{}万画素まで）。小さくしてから送ってください / \
         the picture has too many pixels ({} megapixels at most); please make it smaller and send it again",
        .max_pixels / 10_000,
        .max_pixels / 1_000_000
    )]
    TooManyPixels { max_pixels: u64 },
    #[error(
        "写真の縦か横が長すぎます（{max_side}ピクセルまで）。小さくしてから送ってください / \
         the picture is too wide or too tall ({max_side} pixels at most); please make it smaller and send it again"
    )]
    TooLong { max_side: u32 },
    /// Preparing the file took longer than the server allows one file (the caller's time limit).
    #[error(
        "写真の変換に時間がかかりすぎたため、受け付けませんでした。小さくしてから送ってください / \
         preparing the picture took too long; please make it smaller and send it again"
    )]
    TooSlow,
    #[error(
        "写真を保存用に変換できませんでした。もう一度送ってください / \
         the photo could not be prepared for storage; please send it again"
    )]
    Reencode,
}

/// "20" for 20 MiB or 20 000 000 bytes, "2.5" for 2.5 MiB.
fn megabytes(bytes: &usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        (bytes / MIB).to_string()
    } else if bytes.is_multiple_of(1_000_000) {
        (bytes / 1_000_000).to_string()
    } else {
        format!("{:.1}", *bytes as f64 / MIB as f64)
    }
}

/// What [`process`] refuses without decoding anything: the size, the kind, and for a photo the
/// dimensions in its header. Cheap (no pixel is decoded), so callers may run it before they
/// wait for a turn to decode; [`process`] runs the same checks again itself.
pub fn precheck(bytes: &[u8], limits: &Limits) -> Result<MediaKind, MediaError> {
    let kind = checked_kind(bytes, limits)?;
    match kind {
        MediaKind::Jpeg => header(bytes, ImageFormat::Jpeg, limits).map(|_| kind),
        MediaKind::Png => header(bytes, ImageFormat::Png, limits).map(|_| kind),
        MediaKind::Pdf | MediaKind::Heic => Ok(kind),
    }
}

fn checked_kind(bytes: &[u8], limits: &Limits) -> Result<MediaKind, MediaError> {
    if bytes.len() > limits.max_bytes {
        return Err(MediaError::TooLarge {
            size: bytes.len(),
            max_bytes: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    match sniff(bytes) {
        Some(MediaKind::Heic) => Err(MediaError::Heic),
        Some(kind) => Ok(kind),
        None => Err(MediaError::Unsupported),
    }
}

/// Checks an upload and makes it ready to be stored: see the module documentation.
pub fn process(bytes: &[u8], limits: &Limits) -> Result<Processed, MediaError> {
    match checked_kind(bytes, limits)? {
        MediaKind::Pdf => pdf(bytes),
        MediaKind::Jpeg => photo(bytes, ImageFormat::Jpeg, limits),
        MediaKind::Png => photo(bytes, ImageFormat::Png, limits),
        MediaKind::Heic => Err(MediaError::Heic),
    }
}

fn pdf(bytes: &[u8]) -> Result<Processed, MediaError> {
    let tail = &bytes[bytes.len().saturating_sub(PDF_EOF_WINDOW)..];
    if !bytes.starts_with(b"%PDF-") || !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(MediaError::Corrupt);
    }
    Ok(Processed {
        kind: MediaKind::Pdf,
        bytes: bytes.to_vec(),
        thumbnail: None,
        width: None,
        height: None,
    })
}
