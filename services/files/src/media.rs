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

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::{sniff, MediaKind};

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

fn refused(format: ImageFormat, limits: &Limits) -> impl Fn(ImageError) -> MediaError + '_ {
    move |e: ImageError| {
        tracing::info!(error = %e, ?format, "photo refused");
        match e {
            // A side over `max_image_width` / `max_image_height`, found in the header.
            ImageError::Limits(l)
                if matches!(l.kind(), image::error::LimitErrorKind::DimensionError) =>
            {
                MediaError::TooLong {
                    max_side: limits.max_side,
                }
            }
            ImageError::Limits(_) => MediaError::TooManyPixels {
                max_pixels: limits.max_pixels,
            },
            ImageError::Unsupported(_) => MediaError::Unsupported,
            _ => MediaError::Corrupt,
        }
    }
}

/// A photo's decoder, with only its headers read, once its dimensions are known to be within
/// the limits: nothing of width × height is allocated before this returns.
fn header<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Box<dyn ImageDecoder + 'a>, MediaError> {
    // The JPEG decoder pads a cut-off file with grey instead of failing: a photo must reach
    // its end marker (for PNG the decoder fails too; checked here so as not to rely on it).
    let complete = match format {
        ImageFormat::Png => png_is_complete(bytes),
        _ => jpeg_is_complete(bytes),
    };
    if !complete {
        return Err(MediaError::Corrupt);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decoder_limits(limits));
    // Reads the headers only.
    let decoder = reader.into_decoder().map_err(refused(format, limits))?;
    let (width, height) = decoder.dimensions();
    // Checked here, before `from_decoder` allocates width × height × channels: the `image`
    // crate checks its allocation limit in `ImageReader::decode` but not on this path.
    if width > limits.max_side || height > limits.max_side {
        return Err(MediaError::TooLong {
            max_side: limits.max_side,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            max_pixels: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(MediaError::Corrupt);
    }
    Ok(Box::new(decoder))
}

fn photo(bytes: &[u8], format: ImageFormat, limits: &Limits) -> Result<Processed, MediaError> {
    let refused = refused(format, limits);
    let mut decoder = header(bytes, format, limits)?;
    // Unreadable EXIF only means no rotation is known: the photo is still good.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(refused)?;
    image.apply_orientation(orientation);

    let (kind, stored) = match format {
        ImageFormat::Png => (MediaKind::Png, encode_png(&image)?),
        _ => (MediaKind::Jpeg, encode_jpeg(&image, JPEG_QUALITY)?),
    };
    let thumbnail = if image.width().max(image.height()) <= THUMBNAIL_MAX_SIDE {
        encode_jpeg(&image, THUMBNAIL_QUALITY)?
    } else {
        encode_jpeg(
            &image.thumbnail(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE),
            THUMBNAIL_QUALITY,
        )?
    };
    Ok(Processed {
        kind,
        bytes: stored,
        thumbnail: Some(thumbnail),
        width: Some(image.width()),
        height: Some(image.height()),
    })
}

/// The `image` crate's own limits, a second line behind the pixel check in [`photo`].
fn decoder_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // Up to 8 bytes a pixel (16-bit RGBA).
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    l
}

/// Pixels only: JFIF header, tables, scan. Transparency is laid on white.
fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let encoder = JpegEncoder::new_with_quality(&mut out, quality);
    let written = match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageLuma8(_) => {
            image.write_with_encoder(encoder)
        }
        other if !other.color().has_alpha() && !other.color().has_color() => {
            DynamicImage::ImageLuma8(other.to_luma8()).write_with_encoder(encoder)
        }
        other => DynamicImage::ImageRgb8(on_white(other)).write_with_encoder(encoder),
    };
    written.map_err(|e| {
        tracing::warn!(error = %e, "encoding a JPEG failed");
        MediaError::Reencode
    })?;
    Ok(out)
}

fn on_white(image: &DynamicImage) -> RgbImage {
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = u16::from(a);
        let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// Pixels only: IHDR, IDAT, IEND, keeping the bit depth and transparency.
fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive);
    image.write_with_encoder(encoder).map_err(|e| {
        tracing::warn!(error = %e, "encoding a PNG failed");
        MediaError::Reencode
    })?;
    Ok(out)
}

/// Whether a PNG's chunks, walked by their lengths, reach an IEND chunk.
fn png_is_complete(b: &[u8]) -> bool {
    let mut i = 8;
    while let Some(header) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(end) = i.checked_add(12).and_then(|e| e.checked_add(len)) else {
            return false;
        };
        if end > b.len() {
            return false;
        }
        if &header[4..8] == b"IEND" {
            return true;
        }
        i = end;
    }
    false
}

/// Whether a JPEG runs from its start to an end-of-image marker after its image data. Walks the
/// segments by their lengths (so an EOI inside an embedded EXIF thumbnail does not count) and
/// the entropy-coded data by its markers. Data after the EOI (Samsung trailers, motion-photo
/// videos) is allowed: it is not stored, since the photo is encoded again.
fn jpeg_is_complete(b: &[u8]) -> bool {
    if !b.starts_with(&[0xff, 0xd8]) {
        return false;
    }
    let mut i = 2;
    let mut seen_scan = false;
    loop {
        // At a marker: 0xFF, maybe fill bytes, then the code.
        if b.get(i) != Some(&0xff) {
            return false;
        }
        while b.get(i + 1) == Some(&0xff) {
            i += 1;
        }
        let Some(&code) = b.get(i + 1) else {
            return false;
        };
        match code {
            0xd9 => return seen_scan,
            0xd0..=0xd7 | 0x01 => {
                i += 2;
                continue;
            }
            0x00 => return false,
            _ => {}
        }
        let Some(len) = b
            .get(i + 2..i + 4)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return false;
        };
        if len < 2 || i + 2 + len > b.len() {
            return false;
        }
        i += 2 + len;
        if code == 0xda {
            seen_scan = true;
            // Entropy-coded data: 0xFF is followed by a stuffed 0x00, a restart marker or fill.
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(0xff), Some(0x00 | 0xd0..=0xd7)) => i += 2,
                    (Some(0xff), Some(0xff)) => i += 1,
                    (Some(0xff), Some(_)) => break,
                    (Some(_), _) => i += 1,
                    (None, _) => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;
    use renrakucho_testkit::photos::{
        exif_tiff, phone_segments, png_chunk, with_segments, GPS_IFD_ENTRY, GPS_MARKER,
    };

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn jpeg_of(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 95)
            .encode_image(image)
            .unwrap();
        out
    }

    /// Left half red, right half blue.
    fn red_left_blue_right(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, _| {
            if x < width / 2 {
                image::Rgb([230, 20, 20])
            } else {
                image::Rgb([20, 20, 230])
            }
        })
    }

    /// The markers of a JPEG up to its first scan, with their payloads.
    fn jpeg_segments(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        assert_eq!(&b[..2], &[0xff, 0xd8]);
        let mut i = 2;
        let mut out = Vec::new();
        loop {
            assert_eq!(b[i], 0xff);
            let code = b[i + 1];
            let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
            out.push((code, b[i + 4..i + 2 + len].to_vec()));
            if code == 0xda {
                return out;
            }
            i += 2 + len;
        }
    }

    fn png_chunks(b: &[u8]) -> Vec<[u8; 4]> {
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
        let mut i = 8;
        let mut out = Vec::new();
        while i < b.len() {
            let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            out.push(b[i + 4..i + 8].try_into().unwrap());
            i += 12 + len;
        }
        out
    }

    fn decode(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).unwrap()
    }

    fn orientation_of(bytes: &[u8]) -> Orientation {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap()
            .into_decoder()
            .unwrap()
            .orientation()
            .unwrap()
    }

    fn assert_red(p: image::Rgb<u8>) {
        assert!(p.0[0] > 180 && p.0[2] < 80, "expected red, got {p:?}");
    }

    fn assert_blue(p: image::Rgb<u8>) {
        assert!(p.0[2] > 180 && p.0[0] < 80, "expected blue, got {p:?}");
    }

    /// Only what a bare JPEG needs: JFIF, quantisation and Huffman tables, frame, scan.
    fn assert_bare_jpeg(bytes: &[u8]) {
        assert_eq!(sniff(bytes), Some(MediaKind::Jpeg));
        for (code, payload) in jpeg_segments(bytes) {
            match code {
                0xe0 => assert!(payload.starts_with(b"JFIF\0")),
                0xdb | 0xc0 | 0xc2 | 0xc4 | 0xdd | 0xda => {}
                other => panic!("unexpected JPEG segment 0x{other:02x}"),
            }
        }
        for secret in [
            b"Exif\0\0".as_slice(),
            &GPS_IFD_ENTRY,
            GPS_MARKER,
            b"http://ns.adobe.com/xap",
            b"xmp-secret",
            b"ICC_PROFILE",
            b"icc-secret",
            b"comment-secret",
        ] {
            assert!(
                !contains(bytes, secret),
                "{:?} survived",
                String::from_utf8_lossy(secret)
            );
        }
        assert_eq!(orientation_of(bytes), Orientation::NoTransforms);
    }

    #[test]
    fn a_phone_photo_loses_exif_gps_xmp_icc_and_comments_and_is_turned_upright() {
        let upload = with_segments(&jpeg_of(&red_left_blue_right(96, 48)), &phone_segments(6));
        // The test photo really carries what a phone writes, and `image` reads it as rotated.
        assert!(contains(&upload, b"Exif\0\0") && contains(&upload, &GPS_IFD_ENTRY));
        assert!(contains(&upload, GPS_MARKER) && contains(&upload, b"xmp-secret"));
        assert_eq!(orientation_of(&upload), Orientation::Rotate90);

        let done = process(&upload, &Limits::default()).unwrap();
        assert_eq!(done.kind, MediaKind::Jpeg);
        assert_eq!((done.width, done.height), (Some(48), Some(96)));
        assert_bare_jpeg(&done.bytes);
        // Orientation 6 is a quarter turn clockwise: the left (red) half is now on top.
        let stored = decode(&done.bytes).to_rgb8();
        assert_eq!(stored.dimensions(), (48, 96));
        assert_red(*stored.get_pixel(24, 10));
        assert_blue(*stored.get_pixel(24, 86));

        let thumbnail = done.thumbnail.unwrap();
        assert_bare_jpeg(&thumbnail);
        let thumbnail = decode(&thumbnail).to_rgb8();
        assert_eq!(thumbnail.dimensions(), (48, 96));
        assert_red(*thumbnail.get_pixel(24, 10));
        assert_blue(*thumbnail.get_pixel(24, 86));
    }

    #[test]
    fn a_large_photo_gets_an_upright_thumbnail_of_at_most_320_pixels() {
        let upload = with_segments(&jpeg_of(&red_left_blue_right(800, 600)), &phone_segments(6));
        let done = process(&upload, &Limits::default()).unwrap();
        assert_eq!((done.width, done.height), (Some(600), Some(800)));
        let thumbnail = done.thumbnail.unwrap();
        assert_bare_jpeg(&thumbnail);
        let thumbnail = decode(&thumbnail).to_rgb8();
        assert_eq!(thumbnail.dimensions(), (240, 320));
        assert_red(*thumbnail.get_pixel(120, 20));
        assert_blue(*thumbnail.get_pixel(120, 300));
    }

    #[test]
    fn a_photo_without_orientation_stays_as_it_is() {
        let upload = jpeg_of(&red_left_blue_right(64, 32));
        let done = process(&upload, &Limits::default()).unwrap();
        assert_eq!((done.width, done.height), (Some(64), Some(32)));
        let stored = decode(&done.bytes).to_rgb8();
        assert_red(*stored.get_pixel(10, 16));
        assert_blue(*stored.get_pixel(54, 16));
    }

    #[test]
    fn a_png_loses_its_text_xmp_and_exif_chunks_and_keeps_transparency() {
        let pixels = image::RgbaImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgba([230, 20, 20, 255])
            } else {
                image::Rgba([20, 20, 230, 0])
            }
        });
        let mut plain = Vec::new();
        PngEncoder::new(&mut plain)
            .write_image(&pixels, 40, 20, image::ExtendedColorType::Rgba8)
            .unwrap();
        // After IHDR (8 + 25 bytes): the chunks phones and editors add.
        let mut upload = plain[..33].to_vec();
        upload.extend(png_chunk(b"tEXt", b"Comment\0text-secret"));
        upload.extend(png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0xmp-secret"));
        upload.extend(png_chunk(b"eXIf", &exif_tiff(6)));
        upload.extend_from_slice(&plain[33..plain.len() - 12]);
        upload.extend(png_chunk(b"tEXt", b"Author\0late-text-secret"));
        upload.extend_from_slice(&plain[plain.len() - 12..]);
        assert_eq!(orientation_of(&upload), Orientation::Rotate90);

        let done = process(&upload, &Limits::default()).unwrap();
        assert_eq!(done.kind, MediaKind::Png);
        assert_eq!(sniff(&done.bytes), Some(MediaKind::Png));
        assert_eq!((done.width, done.height), (Some(20), Some(40)));
        for chunk in png_chunks(&done.bytes) {
            assert!(
                [*b"IHDR", *b"IDAT", *b"IEND"].contains(&chunk),
                "unexpected chunk {}",
                String::from_utf8_lossy(&chunk)
            );
        }
        for secret in [
            b"text-secret".as_slice(),
            b"xmp-secret",
            b"eXIf",
            &GPS_IFD_ENTRY,
            GPS_MARKER,
        ] {
            assert!(!contains(&done.bytes, secret));
        }
        let stored = decode(&done.bytes).to_rgba8();
        assert_eq!(stored.get_pixel(10, 5).0, [230, 20, 20, 255]);
        assert_eq!(stored.get_pixel(10, 35).0[3], 0);

        let thumbnail = done.thumbnail.unwrap();
        assert_bare_jpeg(&thumbnail);
        let thumbnail = decode(&thumbnail).to_rgb8();
        assert_eq!(thumbnail.dimensions(), (20, 40));
        assert_red(*thumbnail.get_pixel(10, 5));
        // The transparent half is laid on white.
        assert!(thumbnail.get_pixel(10, 35).0.iter().all(|&c| c > 230));
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // PNGs claiming 100000 × 100000 (30 GB decoded) and 10000 × 10000 RGB pixels, with
        // the start of a deflate stream of zeros: refused before any pixel buffer exists.
        for (side, refusal) in [
            (100_000u32, MediaError::TooLong { max_side: 20_000 }),
            (
                10_000,
                MediaError::TooManyPixels {
                    max_pixels: 50_000_000,
                },
            ),
        ] {
            let mut ihdr = Vec::new();
            ihdr.extend_from_slice(&side.to_be_bytes());
            ihdr.extend_from_slice(&side.to_be_bytes());
            ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
            let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
            bomb.extend(png_chunk(b"IHDR", &ihdr));
            bomb.extend(png_chunk(
                b"IDAT",
                &[0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00],
            ));
            bomb.extend(png_chunk(b"IEND", &[]));
            assert_eq!(process(&bomb, &Limits::default()), Err(refusal.clone()));
            assert_eq!(precheck(&bomb, &Limits::default()), Err(refusal));
        }

        // Whole, valid JPEGs whose frame headers claim 65000 × 65000 and 10000 × 10000.
        for (size, refusal) in [
            (
                [0xfd, 0xe8, 0xfd, 0xe8],
                MediaError::TooLong { max_side: 20_000 },
            ),
            (
                [0x27, 0x10, 0x27, 0x10],
                MediaError::TooManyPixels {
                    max_pixels: 50_000_000,
                },
            ),
        ] {
            let mut jpeg = jpeg_of(&red_left_blue_right(16, 16));
            let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
            jpeg[sof + 5..sof + 9].copy_from_slice(&size);
            assert_eq!(process(&jpeg, &Limits::default()), Err(refusal.clone()));
            assert_eq!(precheck(&jpeg, &Limits::default()), Err(refusal));
        }
    }

    /// A PNG whose header claims `width` × `height` grey pixels, with an empty compressed
    /// stream: what matters is that it is refused before anything is decoded.
    fn zero_png(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend(png_chunk(b"IHDR", &ihdr));
        out.extend(png_chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ));
        out.extend(png_chunk(b"IEND", &[]));
        out
    }

    #[test]
    fn a_long_thin_picture_is_refused_from_its_header_though_its_pixels_are_few() {
        // 1 × 49 000 000: under the 50-megapixel limit, over the 20 000 pixels of a side.
        for (width, height) in [(49_000_000, 1), (1, 49_000_000), (20_001, 100)] {
            let bomb = zero_png(width, height);
            let refused = Err(MediaError::TooLong { max_side: 20_000 });
            assert_eq!(precheck(&bomb, &Limits::default()).map(|_| ()), refused);
            assert_eq!(process(&bomb, &Limits::default()).map(|_| ()), refused);
        }
        let mut jpeg = jpeg_of(&red_left_blue_right(16, 16));
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        // 1 × 40 000 (height, then width, in the frame header).
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0x00, 0x01, 0x9c, 0x40]);
        assert_eq!(
            precheck(&jpeg, &Limits::default()),
            Err(MediaError::TooLong { max_side: 20_000 })
        );
        // The precheck lets a good photo and a PDF through, and refuses what process refuses.
        let good = jpeg_of(&red_left_blue_right(16, 16));
        assert_eq!(precheck(&good, &Limits::default()), Ok(MediaKind::Jpeg));
        assert_eq!(
            precheck(b"%PDF-1.7\n%%EOF\n", &Limits::default()),
            Ok(MediaKind::Pdf)
        );
        assert_eq!(
            precheck(b"<html>", &Limits::default()),
            Err(MediaError::Unsupported)
        );
    }

    #[test]
    fn the_pixel_limit_is_inclusive() {
        let upload = jpeg_of(&red_left_blue_right(10, 10));
        let at = |max_pixels| {
            process(
                &upload,
                &Limits {
                    max_bytes: 1 << 20,
                    max_pixels,
                    ..Limits::default()
                },
            )
        };
        assert!(at(100).is_ok());
        assert_eq!(at(99), Err(MediaError::TooManyPixels { max_pixels: 99 }));
    }

    #[test]
    fn truncated_or_garbled_photos_are_corrupt() {
        let noisy = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (x ^ y) as u8 * 4])
        });
        let jpeg = with_segments(&jpeg_of(&noisy), &phone_segments(1));
        assert!(process(&jpeg, &Limits::default()).is_ok());
        for cut in [jpeg.len() - 2, jpeg.len() / 2, 300, 40, 3] {
            assert_eq!(
                process(&jpeg[..cut], &Limits::default()),
                Err(MediaError::Corrupt),
                "JPEG cut at {cut} of {}",
                jpeg.len()
            );
        }
        // Garbage after the scan instead of the end marker.
        let mut garbled = jpeg[..jpeg.len() - 2].to_vec();
        garbled.extend_from_slice(&[0x12; 64]);
        assert_eq!(
            process(&garbled, &Limits::default()),
            Err(MediaError::Corrupt)
        );

        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(noisy.as_raw(), 64, 64, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(process(&png, &Limits::default()).is_ok());
        for cut in [png.len() - 5, png.len() / 2, 40] {
            assert_eq!(
                process(&png[..cut], &Limits::default()),
                Err(MediaError::Corrupt),
                "PNG cut at {cut}"
            );
        }
        let mut garbage = png[..16].to_vec();
        garbage.extend(b"<script>alert(1)</script>".repeat(20));
        assert_eq!(
            process(&garbage, &Limits::default()),
            Err(MediaError::Corrupt)
        );
    }

    #[test]
    fn data_after_the_end_of_a_jpeg_is_dropped() {
        // Samsung trailers and motion-photo videos follow the EOI; the photo is still good.
        let mut upload = jpeg_of(&red_left_blue_right(32, 32));
        upload.extend_from_slice(b"\0\0\0\x18ftypmp42 trailing-video-secret");
        let done = process(&upload, &Limits::default()).unwrap();
        assert!(!contains(&done.bytes, b"trailing-video-secret"));
    }

    #[test]
    fn anything_but_photos_and_pdfs_is_unsupported() {
        let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
        let cases: [&[u8]; 6] = [
            b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
            b"just some text, named photo.jpg",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00",
            b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
            gif,
        ];
        for bytes in cases {
            assert_eq!(
                process(bytes, &Limits::default()),
                Err(MediaError::Unsupported),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(process(b"", &Limits::default()), Err(MediaError::Empty));
    }

    #[test]
    fn heic_is_refused_with_the_iphone_setting_to_change() {
        let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        heic.extend_from_slice(&[0; 64]);
        assert_eq!(sniff(&heic), Some(MediaKind::Heic));
        let refused = process(&heic, &Limits::default()).unwrap_err();
        assert_eq!(refused, MediaError::Heic);
        let message = refused.to_string();
        assert!(message.contains("「互換性優先」") && message.contains("Most Compatible"));
    }

    #[test]
    fn a_whole_pdf_is_stored_unchanged_and_a_cut_one_is_refused() {
        let pdf =
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
                    2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n\
                    trailer\n<< /Root 1 0 R >>\n%%EOF\n";
        let done = process(pdf, &Limits::default()).unwrap();
        assert_eq!(done.kind, MediaKind::Pdf);
        assert_eq!(done.bytes, pdf);
        assert_eq!(done.thumbnail, None);
        assert_eq!((done.width, done.height), (None, None));

        assert_eq!(
            process(&pdf[..pdf.len() - 8], &Limits::default()),
            Err(MediaError::Corrupt)
        );
        // %%EOF far from the end: the rest is not a PDF's tail.
        let mut padded = pdf.to_vec();
        padded.extend(std::iter::repeat_n(b'x', 2 * PDF_EOF_WINDOW));
        assert_eq!(
            process(&padded, &Limits::default()),
            Err(MediaError::Corrupt)
        );
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
        let limits = Limits {
            max_bytes: 1000,
            ..Limits::default()
        };
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize(1001, b' ');
        assert_eq!(
            process(&pdf, &limits),
            Err(MediaError::TooLarge {
                size: 1001,
                max_bytes: 1000
            })
        );
        pdf.truncate(994);
        pdf.extend_from_slice(b"%%EOF\n");
        assert!(process(&pdf, &limits).is_ok());
    }

    #[test]
    fn messages_are_japanese_then_english() {
        let too_large = MediaError::TooLarge {
            size: 30 << 20,
            max_bytes: Limits::default().max_bytes,
        };
        assert_eq!(
            too_large.to_string(),
            "ファイルが大きすぎます（20MBまで） / the file is too large (20 MB at most)"
        );
        assert_eq!(
            MediaError::TooManyPixels {
                max_pixels: 50_000_000
            }
            .to_string(),
            "写真の画素数が多すぎます（5000万画素まで）。小さくしてから送ってください / \
             the picture has too many pixels (50 megapixels at most); please make it smaller and send it again"
        );
        for error in [
            MediaError::Empty,
            too_large,
            MediaError::Unsupported,
            MediaError::Heic,
            MediaError::Corrupt,
            MediaError::TooManyPixels { max_pixels: 1 },
            MediaError::TooLong { max_side: 20_000 },
            MediaError::TooSlow,
            MediaError::Reencode,
        ] {
            let message = error.to_string();
            let (japanese, english) = message.split_once(" / ").unwrap();
            assert!(japanese
                .chars()
                .any(|c| ('\u{3040}'..='\u{30ff}').contains(&c)));
            assert!(english.is_ascii() || english.contains('→'), "{english}");
        }
        assert_eq!(megabytes(&20_000_000), "20");
        assert_eq!(megabytes(&(5 << 19)), "2.5");
    }
}
