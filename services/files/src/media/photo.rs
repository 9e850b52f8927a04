//! Photos: decoded within the limits (checked from the header first), turned upright, and
//! encoded again with nothing but their pixels, with a thumbnail.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use super::complete::{jpeg_is_complete, png_is_complete};
use super::{Limits, MediaError, Processed, JPEG_QUALITY, THUMBNAIL_MAX_SIDE, THUMBNAIL_QUALITY};
use crate::MediaKind;

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
pub(super) fn header<'a>(
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

pub(super) fn photo(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Processed, MediaError> {
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
