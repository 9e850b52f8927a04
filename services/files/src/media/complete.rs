//! Whether a photo arrived whole: its structure walked to its end marker, since a decoder may
//! pad a cut-off file instead of failing.

/// Whether a PNG's chunks, walked by their lengths, reach an IEND chunk.
pub(super) fn png_is_complete(b: &[u8]) -> bool {
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
pub(super) fn jpeg_is_complete(b: &[u8]) -> bool {
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
