//! Photos as phones and cameras write them, built byte by byte: EXIF with the GPS position of
//! the patient's home, XMP, an ICC profile, a comment, PNG text chunks. What the upload path
//! must strip, in one place for every test that checks it did (the file store's unit tests, the
//! notebook's attachments, consent scans).
//!
//! Plain `std`: available without the `harness` feature, so that crates below the server
//! (`renrakucho-files`) can use it in their own unit tests.

/// The map datum written into every GPS IFD here: recognisable wherever it survives.
pub const GPS_MARKER: &[u8] = b"WGS-84 GPS-TEST-MARKER";

/// The IFD0 entry pointing at the GPS IFD: tag 0x8825, type LONG, count 1 (little endian).
pub const GPS_IFD_ENTRY: [u8; 8] = [0x25, 0x88, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00];

/// A little-endian TIFF/EXIF block: IFD0 with the orientation and a GPS IFD with a position in
/// Tokyo and [`GPS_MARKER`] as its map datum.
pub fn exif_tiff(orientation: u16) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value);
    }
    let ifd_len = |n: u32| 2 + 12 * n + 4;
    let gps_ifd = 8 + ifd_len(2);
    let lat = gps_ifd + ifd_len(5);
    let lon = lat + 24;
    let datum = lon + 24;

    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, 4, 1, gps_ifd.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len() as u32, gps_ifd);
    t.extend_from_slice(&5u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, lat.to_le_bytes());
    entry(&mut t, 0x0003, 2, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, 5, 3, lon.to_le_bytes());
    entry(
        &mut t,
        0x0012,
        2,
        GPS_MARKER.len() as u32 + 1,
        datum.to_le_bytes(),
    );
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len() as u32, lat);
    for (num, den) in [
        (35, 1),
        (41, 1),
        (2271, 100),
        (139, 1),
        (41, 1),
        (3012, 100),
    ] {
        t.extend_from_slice(&u32::to_le_bytes(num));
        t.extend_from_slice(&u32::to_le_bytes(den));
    }
    t.extend_from_slice(GPS_MARKER);
    t.push(0);
    t
}

/// An APP1 payload as a camera writes it: `Exif\0\0` and [`exif_tiff`].
pub fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&exif_tiff(orientation));
    exif
}

/// One JPEG marker segment: `FF marker`, the length (payload + 2), the payload.
pub fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff, marker];
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `jpeg` with `segments` inserted right after its start marker, where a camera writes its
/// APP1 EXIF.
pub fn with_segments(jpeg: &[u8], segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for (marker, payload) in segments {
        out.extend(jpeg_segment(*marker, payload));
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A phone photo's metadata: EXIF (orientation, GPS), XMP, an ICC profile and a comment, each
/// with a recognisable secret.
pub fn phone_segments(orientation: u16) -> Vec<(u8, Vec<u8>)> {
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(
        b"<x:xmpmeta><rdf:Description exif:GPSLatitude=\"35,41.37N\" xmp-secret/></x:xmpmeta>",
    );
    let mut icc = b"ICC_PROFILE\0\x01\x01".to_vec();
    icc.extend_from_slice(b"icc-secret desc: taken at the patient's home");
    vec![
        (0xe1, exif_app1(orientation)),
        (0xe1, xmp),
        (0xe2, icc),
        (0xfe, b"comment-secret".to_vec()),
    ]
}

/// A whole baseline JPEG, built by hand: 8×8 grey, one component, every quantiser 1, one
/// Huffman code each for "DC difference 0" and "end of block"; and, as a phone writes it,
/// EXIF with a GPS position right after the start marker.
pub fn phone_jpeg() -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    out.extend(jpeg_segment(0xe1, &exif_app1(1)));
    out.extend(jpeg_segment(0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    out.extend(jpeg_segment(0xdb, &dqt));
    // Baseline, 8 bits, 8 × 8, one component (ID 1, 1×1 sampling, table 0).
    out.extend(jpeg_segment(0xc0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
    for class in [0x00u8, 0x10] {
        let mut dht = vec![class, 1];
        dht.extend_from_slice(&[0u8; 15]);
        dht.push(0);
        out.extend(jpeg_segment(0xc4, &dht));
    }
    out.extend(jpeg_segment(0xda, &[1, 1, 0x00, 0, 63, 0]));
    // DC "0", EOB "0", padded with ones.
    out.push(0x3f);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

/// The CRC-32 PNG chunks carry (ISO 3309, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One PNG chunk: length, type, data, CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut typed = kind.to_vec();
    typed.extend_from_slice(data);
    out.extend_from_slice(&typed);
    out.extend_from_slice(&crc32(&typed).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phone_jpeg_carries_its_gps_position_in_an_app1_segment_after_the_start() {
        let photo = phone_jpeg();
        assert_eq!(&photo[..4], &[0xff, 0xd8, 0xff, 0xe1]);
        assert_eq!(&photo[6..12], b"Exif\0\0");
        assert!(photo.windows(GPS_MARKER.len()).any(|w| w == GPS_MARKER));
        assert!(photo.windows(8).any(|w| w == GPS_IFD_ENTRY));
        assert!(photo.ends_with(&[0xff, 0xd9]));
    }

    #[test]
    fn a_png_chunk_has_the_crc_zlib_computes() {
        // IEND's CRC, as every PNG ends with it.
        assert_eq!(
            png_chunk(b"IEND", &[]),
            [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]
        );
    }
}
