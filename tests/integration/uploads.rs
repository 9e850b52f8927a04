//! Uploads that cannot hurt (issue 12 §1), each attack performed and seen refused or handled:
//! a consent scan keeps no GPS and is refused when it does not decode; decompression bombs are
//! refused from their headers and hold up no one else's upload; files an upload cut off left
//! behind are swept, and nothing a row names, nor a fresh upload, ever is.

use std::path::Path;
use std::time::{Duration, SystemTime};

use renrakucho_authz::Action;
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_testkit::photos::{phone_jpeg, png_chunk, GPS_MARKER};
use renrakucho_testkit::{spawn_app, TestApp, PNG_1X1};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::notebook_http::{upload, uploaded};
use crate::support::*;

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn consent_body(scan: Option<&[u8]>) -> Value {
    let mut body = json!({
        "signer": { "kind": "patient" },
        "signed_on": "2026-11-01",
        "scope": "在宅医療のため、ケアチームの施設間で連絡帳を共有すること",
    });
    if let Some(scan) = scan {
        body["scan_base64"] = json!(base64(scan));
    }
    body
}

async fn post_consent(app: &TestApp, client: &Client, patient: Uuid, scan: &[u8]) -> Response {
    client
        .post(patient_url(app, patient, "/consents"))
        .json(&consent_body(Some(scan)))
        .send()
        .await
        .unwrap()
}

/// A clinic with two nurses (`a`, `b`) and a patient the clinic registered; a client for each.
async fn clinic(app: &TestApp, code: &str) -> (Uuid, Client, Client) {
    let clinic = app.seed_facility(code, FacilityKind::Clinic).await;
    let a = app
        .seed_staff(&clinic, "nurse-a", StaffRole::Staff, Profession::Nurse)
        .await;
    app.seed_staff(&clinic, "nurse-b", StaffRole::Staff, Profession::Nurse)
        .await;
    let patient = app
        .seed_patient(&a, "上野 花子", "ウエノ ハナコ")
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &clinic, patient, Action::NotebookWrite, true).await;
    (
        patient,
        app.client_for(&clinic, "nurse-a").await,
        app.client_for(&clinic, "nurse-b").await,
    )
}

async fn consent_count(app: &TestApp, client: &Client, patient: Uuid) -> usize {
    let response = client
        .get(patient_url(app, patient, "/consents"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    json_of(response).await.as_array().unwrap().len()
}

#[tokio::test]
async fn consent_scans_are_cleaned_like_notebook_photos_and_what_does_not_decode_is_refused() {
    let app = spawn_app().await;
    let (patient, client, _) = clinic(&app, "UP-SCAN").await;

    // A phone photo of the signed form, with the GPS position of the patient's home in EXIF.
    let photo = phone_jpeg();
    assert!(contains(&photo, b"Exif\0\0") && contains(&photo, GPS_MARKER));
    let response = post_consent(&app, &client, patient, &photo).await;
    assert_eq!(response.status(), 201, "a photo of the form");
    let consent = json_of(response).await["id"].as_str().unwrap().to_string();
    let listed = json_of(
        client
            .get(patient_url(&app, patient, "/consents"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed[0]["scan_media_type"], "image/jpeg");
    let response = client
        .get(patient_url(
            &app,
            patient,
            &format!("/consents/{consent}/scan"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stored = response.bytes().await.unwrap().to_vec();
    assert!(stored.starts_with(&[0xff, 0xd8]), "still a JPEG");
    assert_eq!(listed[0]["scan_size"], stored.len());
    assert!(!contains(&stored, b"Exif"), "EXIF kept in the scan");
    assert!(!contains(&stored, GPS_MARKER), "the GPS position kept");

    // A PNG with an HTML page after its end: accepted as the picture it is, stored without
    // the page.
    let mut trailing = PNG_1X1.to_vec();
    trailing.extend_from_slice(b"<html><script>alert('scan')</script></html>");
    let response = post_consent(&app, &client, patient, &trailing).await;
    assert_eq!(response.status(), 201, "a PNG with a page after it");
    let consent = json_of(response).await["id"].as_str().unwrap().to_string();
    let stored = client
        .get(patient_url(
            &app,
            patient,
            &format!("/consents/{consent}/scan"),
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(stored.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(!contains(&stored, b"<script>"), "the page kept in the scan");

    let consents = consent_count(&app, &client, patient).await;
    let files = stored_files(&app).len();
    // PNG magic with HTML inside: no picture decodes from it. A 422 on `scan`, in Japanese
    // and English, and nothing recorded or stored.
    let mut html = b"\x89PNG\r\n\x1a\n".to_vec();
    html.extend_from_slice(b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>");
    let mut in_a_chunk = b"\x89PNG\r\n\x1a\n".to_vec();
    in_a_chunk.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    in_a_chunk.extend(png_chunk(b"IDAT", b"<html><script>alert(1)</script>"));
    in_a_chunk.extend(png_chunk(b"IEND", &[]));
    let mut cut = phone_jpeg();
    cut.truncate(cut.len() / 2);
    for (bytes, what) in [
        (html, "HTML behind PNG magic"),
        (in_a_chunk, "HTML as a PNG's image data"),
        (cut, "half a JPEG"),
        (
            b"%PDF-1.7\n<html>no end</html>".to_vec(),
            "a PDF that is not whole",
        ),
    ] {
        let response = post_consent(&app, &client, patient, &bytes).await;
        let f = failure(response).await;
        assert_eq!(
            (f.status, f.field.as_deref()),
            (422, Some("scan")),
            "{what}: {f:?}"
        );
        let (japanese, english) = f.message.split_once(" / ").expect("Japanese / English");
        assert!(
            !japanese.is_ascii() && english.is_ascii(),
            "{what}: {}",
            f.message
        );
    }
    assert_eq!(
        consent_count(&app, &client, patient).await,
        consents,
        "nothing recorded"
    );
    assert_eq!(stored_files(&app).len(), files, "nothing stored");
}

/// A grey PNG of `width` × `height` pixels, all black, as a real encoder compresses it: a few
/// tens of kilobytes that decode to `width` × `height` bytes. The image data is only zeros (a
/// filter byte and the pixels of each row), so it is encoded as a picture of the same number
/// of bytes in fewer, longer rows (quick to write), and the header then names the real size.
fn zero_png(width: u32, height: u32) -> Vec<u8> {
    let raw = u64::from(height) * (u64::from(width) + 1);
    let rows = if raw % 1000 == 0 && raw / 1000 > 1 {
        1000
    } else {
        1
    };
    let mut encoded = Vec::new();
    let mut encoder = png::Encoder::new(&mut encoded, (raw / rows - 1) as u32, rows as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().unwrap();
    writer
        .write_image_data(&vec![0u8; (raw - rows) as usize])
        .unwrap();
    writer.finish().unwrap();

    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    // The encoder's chunks after its own IHDR (8 + 25 bytes): the image data and the end.
    out.extend_from_slice(&encoded[33..]);
    out
}

#[tokio::test]
async fn decompression_bombs_are_refused_from_their_headers_and_hold_up_no_one() {
    let app = spawn_app().await;
    let (patient, a, b) = clinic(&app, "UP-BOMB").await;
    // The bomb: 1 × 49 000 000 pixels (under the pixel limit) in a small file; and
    // one of 8 000 × 8 000 (64 megapixels, over it) built by hand, a tiny IDAT behind a header.
    let tall = zero_png(1, 49_000_000);
    let wide = zero_png(49_000_000, 1);
    assert!(tall.len() < 1 << 20, "a small file: {} bytes", tall.len());
    let mut many = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 8_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&8_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    many.extend(png_chunk(b"IHDR", &ihdr));
    many.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00],
    ));
    many.extend(png_chunk(b"IEND", &[]));

    let files = stored_files(&app).len();
    let attachment =
        |bytes: Vec<u8>| upload(&app, &a, patient, Some("image/png"), "bomb.png", bytes);
    // Nurse A sends all of them at once, as attachments and as a consent scan, while nurse B
    // sends an ordinary photo. A generous bound: everything is answered within a minute (each
    // bomb would take a minute of CPU to decode).
    let everything = async {
        tokio::join!(
            attachment(tall.clone()),
            attachment(wide),
            attachment(many),
            post_consent(&app, &a, patient, &tall),
            uploaded(&app, &b, patient, "image/jpeg", "写真.jpg", phone_jpeg()),
        )
    };
    let (tall_r, wide_r, many_r, scan_r, colleague) =
        tokio::time::timeout(Duration::from_secs(60), everything)
            .await
            .expect("every upload answered within a minute");

    assert_eq!(
        colleague["media_type"], "image/jpeg",
        "the colleague's photo is stored"
    );
    for (response, field, what, words) in [
        (tall_r, "file", "1 × 49 000 000", "too wide or too tall"),
        (wide_r, "file", "49 000 000 × 1", "too wide or too tall"),
        (many_r, "file", "8 000 × 8 000", "too many pixels"),
        (
            scan_r,
            "scan",
            "1 × 49 000 000 as a scan",
            "too wide or too tall",
        ),
    ] {
        let f = failure(response).await;
        assert_eq!(
            (f.status, f.field.as_deref()),
            (422, Some(field)),
            "{what}: {f:?}"
        );
        assert!(f.message.contains(words), "{what}: {}", f.message);
        assert!(
            f.message.contains("ピクセル") || f.message.contains("画素"),
            "{what}: {}",
            f.message
        );
    }
    // The colleague's photo and its thumbnail, nothing of the bombs.
    assert_eq!(stored_files(&app).len(), files + 2);
}

/// Sets a stored file's modification time `age` into the past.
fn age_file(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn files_no_row_names_are_swept_after_the_grace_period_and_nothing_else() {
    let app = spawn_app().await;
    let (patient, client, _) = clinic(&app, "UP-SWEEP").await;
    let root = app.settings.files_dir();

    // Referenced: an attachment with its thumbnail, and a consent's scan.
    let attached = uploaded(
        &app,
        &client,
        patient,
        "image/png",
        "写真.png",
        PNG_1X1.to_vec(),
    )
    .await;
    let attachment = attached["id"].as_str().unwrap().to_string();
    let response = post_consent(&app, &client, patient, PNG_1X1).await;
    assert_eq!(response.status(), 201);
    let consent = json_of(response).await["id"].as_str().unwrap().to_string();
    let referenced = [
        format!("attachments/{patient}/{attachment}"),
        format!("attachments/{patient}/{attachment}.thumb"),
        format!("consents/{patient}/{consent}"),
    ];

    // What a killed upload leaves: sealed files no row names. Two of them old, one of them in
    // the folder of a patient who no longer exists (an erasure's files cut off too); one
    // fresh, as an upload whose row is about to be written; and a name not of ours.
    let gone = Uuid::now_v7();
    let old_orphans = [
        format!("attachments/{patient}/{}", Uuid::now_v7()),
        format!("consents/{patient}/{}", Uuid::now_v7()),
        format!("attachments/{gone}/{}", Uuid::now_v7()),
    ];
    let fresh_orphan = format!("consents/{patient}/{}", Uuid::now_v7());
    let not_ours = "attachments/readme.txt".to_string();
    for name in old_orphans.iter().chain([&fresh_orphan, &not_ours]) {
        app.files.put(name, b"sealed".to_vec()).await.unwrap();
    }
    // Everything but the fresh orphan was stored two hours ago.
    for name in referenced.iter().chain(&old_orphans).chain([&not_ours]) {
        age_file(&root.join(name), Duration::from_secs(2 * 3600));
    }

    // Two processes sweeping at once.
    let grace = renrakucho_registry::ORPHAN_GRACE;
    let (one, two) = tokio::join!(
        renrakucho_registry::sweep_orphaned_files(&app.db, &app.files, grace),
        renrakucho_registry::sweep_orphaned_files(&app.db, &app.files, grace),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(one + two >= old_orphans.len(), "{one} + {two}");

    for name in &old_orphans {
        assert!(!root.join(name).exists(), "{name} left behind");
    }
    assert!(
        !root.join(format!("attachments/{gone}")).exists(),
        "the gone patient's folder"
    );
    for name in referenced.iter().chain([&fresh_orphan, &not_ours]) {
        assert!(root.join(name).exists(), "{name} swept");
    }
    // Still served whole.
    let url = patient_url(&app, patient, &format!("/attachments/{attachment}"));
    assert_eq!(status_of(&client, &url).await, 200);
    let url = patient_url(&app, patient, &format!("/consents/{consent}/scan"));
    assert_eq!(status_of(&client, &url).await, 200);

    // Nothing more to do the next time.
    assert_eq!(
        renrakucho_registry::sweep_orphaned_files(&app.db, &app.files, grace)
            .await
            .unwrap(),
        0
    );
}
