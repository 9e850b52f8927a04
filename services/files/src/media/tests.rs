//! What the cleaning of uploads keeps and drops, on real-looking phone photos and PDFs.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, RgbImage};

use super::*;
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
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
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
