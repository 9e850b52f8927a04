//! Attachments: cleaned of their metadata, refused when they are not what they claim, stored
//! encrypted (on local disk and in an S3 bucket) and sent back as downloads, never inline.

use renrakucho_testkit::photos::{phone_jpeg, GPS_IFD_ENTRY, GPS_MARKER};
use renrakucho_testkit::PNG_1X1;

use super::*;

/// The PNG's name as the nurse's phone gives it.
const PNG_NAME: &str = "褥瘡の写真 1.png";

/// The nurse uploads a PNG and a phone photo (EXIF with the GPS position of the patient's
/// home, a Windows path for a name); what the API says of each.
async fn two_uploads(app: &TestApp, net: &Net) -> (Value, Value) {
    let p = net.patient;
    let png = uploaded(
        app,
        &net.nurse_c,
        p,
        "image/png",
        PNG_NAME,
        PNG_1X1.to_vec(),
    )
    .await;
    assert_eq!(png["file_name"], PNG_NAME);
    assert_eq!(png["media_type"], "image/png");
    assert_eq!(png["has_thumbnail"], true);
    assert!(png["size"].as_i64().unwrap() > 0);

    let photo = phone_jpeg();
    assert!(contains(&photo, b"Exif\0\0") && contains(&photo, GPS_MARKER));
    let jpeg = uploaded(
        app,
        &net.nurse_c,
        p,
        "image/jpeg",
        "C:\\写真\\自宅にて.jpg",
        photo,
    )
    .await;
    assert_eq!(jpeg["media_type"], "image/jpeg");
    assert_eq!(jpeg["file_name"], "自宅にて.jpg", "the path is dropped");
    (png, jpeg)
}

/// The nurse's entry with both files attached; the entry, which lists them.
async fn attach_both(app: &TestApp, net: &Net, png_id: &str, jpeg_id: &str) -> Value {
    let entry = post(
        app,
        &net.nurse_c,
        net.patient,
        json!({ "category": "treatment", "body": "褥瘡の処置、写真を添付", "attachments": [png_id, jpeg_id] }),
    )
    .await;
    let mut listed: Vec<(String, String)> = entry["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                id_of(f),
                f["file_name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (png_id.to_string(), PNG_NAME.to_string()),
        (jpeg_id.to_string(), "自宅にて.jpg".to_string()),
    ];
    expected.sort();
    assert_eq!(listed, expected, "the entry lists its files");
    entry
}

/// Asserts a download of the PNG: as an attachment named by its ID (its own name only in
/// `filename*`), never sniffed, never cached.
fn assert_png_download(response: &Response, png_id: &str) {
    assert_eq!(response.status(), 200, "downloading the PNG");
    assert_eq!(header(response, "content-type"), "image/png");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "cache-control"), "no-store");
    let disposition = header(response, "content-disposition");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains(&format!("filename=\"attachment-{png_id}.png\"")),
        "{disposition}"
    );
    let encoded = disposition
        .split("filename*=UTF-8''")
        .nth(1)
        .expect("filename*");
    assert_eq!(percent_decode(encoded.trim()), PNG_NAME);
}

/// Asserts that no file under the server's file store holds anything of the photos in the
/// clear: no PNG or JPEG structure, no EXIF, no GPS position, no file name.
fn assert_every_stored_file_sealed(app: &TestApp) {
    let all = stored_files(app);
    assert!(all.len() >= 4, "two files and their thumbnails");
    for file in &all {
        let bytes = std::fs::read(file).unwrap();
        for secret in [
            b"\x89PNG\r\n\x1a\n".as_slice(),
            b"IHDR",
            b"IDAT",
            b"JFIF",
            b"Exif",
            GPS_MARKER,
            PNG_NAME.as_bytes(),
        ] {
            assert!(!contains(&bytes, secret), "a stored file holds plaintext");
        }
    }
}

#[tokio::test]
async fn what_is_not_a_photo_or_a_pdf_or_comes_as_a_form_is_refused() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    // What is not a photo or a PDF, whatever it claims: 422 on `file`.
    let bad: [(&str, Vec<u8>, &str); 3] = [
        (
            "写真.png",
            b"just some text, named like a photo".to_vec(),
            "a text file sent as image/png",
        ),
        ("空.png", Vec::new(), "an empty file"),
        ("途中.png", PNG_1X1[..40].to_vec(), "a cut-off PNG"),
    ];
    for (name, bytes, what) in bad {
        let response = upload(&app, &net.nurse_c, p, Some("image/png"), name, bytes).await;
        invalid(response, "file", what).await;
    }
    // Bodies another site could make a browser send: 415.
    for content_type in [
        Some("multipart/form-data; boundary=xyz"),
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = upload(
            &app,
            &net.nurse_c,
            p,
            content_type,
            "写真.png",
            PNG_1X1.to_vec(),
        )
        .await;
        let f = failure(response).await;
        assert_eq!(
            (f.status, f.code.as_str()),
            (415, "unsupported_media_type"),
            "{content_type:?}"
        );
    }
    assert!(stored_files(&app).is_empty(), "nothing was stored");
}

#[tokio::test]
async fn attachments_are_cleaned_stored_encrypted_and_sent_back_as_attachments() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let (png, jpeg) = two_uploads(&app, &net).await;
    let (png_id, jpeg_id) = (id_of(&png), id_of(&jpeg));

    // Not attached yet: the care team does not see the upload.
    let png_url = patient_url(&app, p, &format!("/attachments/{png_id}"));
    assert_eq!(status_of(&net.member_c, &png_url).await, 404);
    // Nor can a member attach another facility's upload to its own entry.
    let response = try_post(
        &app,
        &net.member_c,
        p,
        &json!({ "category": "notice", "body": "写真を添付", "attachments": [png_id] }),
    )
    .await;
    invalid(
        response,
        "attachments",
        "attaching another facility's upload",
    )
    .await;
    attach_both(&app, &net, &png_id, &jpeg_id).await;

    // Downloads: as an attachment, never sniffed, never cached.
    for client in [&net.nurse_c, &net.member_c] {
        let response = client.get(&png_url).send().await.unwrap();
        assert_png_download(&response, &png_id);
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(bytes.len() as i64, png["size"].as_i64().unwrap());
    }
    let jpeg_url = patient_url(&app, p, &format!("/attachments/{jpeg_id}"));
    let response = net.member_c.get(&jpeg_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/jpeg");
    let cleaned = response.bytes().await.unwrap().to_vec();
    assert!(cleaned.starts_with(&[0xff, 0xd8]));
    assert!(!contains(&cleaned, b"Exif"), "no EXIF left");
    assert!(!contains(&cleaned, GPS_MARKER), "no GPS left");
    assert!(!contains(&cleaned, &GPS_IFD_ENTRY), "no GPS IFD left");
    for id in [&png_id, &jpeg_id] {
        let response = net
            .member_c
            .get(patient_url(
                &app,
                p,
                &format!("/attachments/{id}/thumbnail"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "a thumbnail");
        assert_eq!(header(&response, "content-type"), "image/jpeg");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let thumb = response.bytes().await.unwrap();
        assert!(thumb.starts_with(&[0xff, 0xd8]));
        assert!(!contains(&thumb, b"Exif") && !contains(&thumb, GPS_MARKER));
    }

    // On disk: encrypted, never the photo in the clear.
    let dir = app.settings.files_dir();
    let png_file = dir.join(format!("attachments/{p}/{png_id}"));
    let sealed = std::fs::read(&png_file).expect("the PNG's stored file");
    let clear = net
        .nurse_c
        .get(&png_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!contains(&sealed, &clear), "the stored file is not the PNG");
    assert!(!contains(&sealed, PNG_1X1));
    assert!(dir.join(format!("attachments/{p}/{png_id}.thumb")).exists());
    assert_every_stored_file_sealed(&app);
}

#[tokio::test]
async fn an_attachment_is_found_only_under_its_patient_by_the_care_team_and_in_one_entry() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let (png, jpeg) = two_uploads(&app, &net).await;
    let (png_id, jpeg_id) = (id_of(&png), id_of(&jpeg));
    let entry = attach_both(&app, &net, &png_id, &jpeg_id).await;
    let png_url = patient_url(&app, p, &format!("/attachments/{png_id}"));
    let jpeg_url = patient_url(&app, p, &format!("/attachments/{jpeg_id}"));

    // The unrelated hospital: 404, like a file that does not exist.
    for url in [
        png_url.clone(),
        format!("{png_url}/thumbnail"),
        jpeg_url,
        patient_url(&app, p, &format!("/attachments/{}", Uuid::new_v4())),
    ] {
        let response = net.outsider_c.get(&url).send().await.unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital");
    }
    let response = net
        .nurse_c
        .get(patient_url(
            &app,
            p,
            &format!("/attachments/{}", Uuid::new_v4()),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(response).await, not_found(), "no such file");

    // Under another patient's URL, the file and the entry are not found.
    let other = another_patient(&app, &net).await;
    for rest in [
        format!("/attachments/{png_id}"),
        format!("/attachments/{png_id}/thumbnail"),
        format!("/entries/{}", id_of(&entry)),
    ] {
        let response = net
            .nurse_c
            .get(patient_url(&app, other, &rest))
            .send()
            .await
            .unwrap();
        assert_eq!(
            failure(response).await,
            not_found(),
            "another patient's URL"
        );
    }
    let response = edit(
        &app,
        &net.nurse_c,
        other,
        &id_of(&entry),
        json!({ "expected_version": 1, "category": "treatment", "body": "別の対象者から修正" }),
    )
    .await;
    assert_eq!(
        failure(response).await,
        not_found(),
        "editing through another patient"
    );

    // A file belongs to one entry.
    let before = timeline_ids(&app, &net.nurse_c, p, "").await;
    let response = try_post(
        &app,
        &net.nurse_c,
        p,
        &json!({ "category": "treatment", "body": "同じ写真をもう一度", "attachments": [png_id] }),
    )
    .await;
    invalid(response, "attachments", "attaching a file twice").await;
    assert_eq!(
        timeline_ids(&app, &net.nurse_c, p, "").await,
        before,
        "nothing stored"
    );
}

/// A server whose files go to `bucket` on moto's S3 (the bucket created first).
async fn app_on_s3(moto: &renrakucho_testkit::KmsEmulator, bucket: &str) -> TestApp {
    let response = Client::new()
        .put(format!("{}/{bucket}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "creating the bucket");
    // The S3 store takes its credentials from the usual AWS environment; moto checks their
    // shape only. Every test that sets them sets the same values.
    std::env::set_var("AWS_ACCESS_KEY_ID", renrakucho_testkit::KMS_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", renrakucho_testkit::KMS_SECRET_KEY);
    let endpoint = moto.endpoint.clone();
    spawn_app_with(|s| {
        s.file_store = renrakucho_server::config::FileStoreKind::S3;
        s.s3_bucket = Some(bucket.into());
        s.s3_region = Some("ap-northeast-1".into());
        s.s3_endpoint = Some(endpoint);
    })
    .await
}

/// The bucket's listing (ListObjectsV2) as moto answers it: each key and its size.
async fn bucket_objects(
    moto: &renrakucho_testkit::KmsEmulator,
    bucket: &str,
) -> Vec<(String, usize)> {
    let listing = Client::new()
        .get(format!("{}/{bucket}?list-type=2", moto.endpoint))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let between = |text: &str, open: &str, close: &str| -> String {
        text.split(open)
            .nth(1)
            .and_then(|rest| rest.split(close).next())
            .unwrap_or_else(|| panic!("{open} in {text}"))
            .to_string()
    };
    listing
        .split("<Contents>")
        .skip(1)
        .map(|c| {
            let size = between(c, "<Size>", "</Size>").parse().expect("a size");
            (between(c, "<Key>", "</Key>"), size)
        })
        .collect()
}

#[tokio::test]
async fn attachments_are_kept_encrypted_in_an_s3_bucket() {
    let moto = renrakucho_testkit::KmsEmulator::start().await;
    let bucket = "renrakucho-notebook-files";
    let app = app_on_s3(&moto, bucket).await;
    let clinic = app.seed_facility("S3-CLINIC", FacilityKind::Clinic).await;
    let doctor = person(
        &app,
        &clinic,
        "doctor",
        StaffRole::Staff,
        Profession::Doctor,
        DOCTOR,
    )
    .await;
    let p = app
        .seed_patient(&doctor, PATIENT_NAME, PATIENT_KANA)
        .await
        .id
        .as_uuid();
    authorizer_follows(&app, &clinic, p, Action::NotebookWrite, true).await;
    let client = app.client_for(&clinic, "doctor").await;

    let file = uploaded(
        &app,
        &client,
        p,
        "image/png",
        "足の写真.png",
        PNG_1X1.to_vec(),
    )
    .await;
    let id = id_of(&file);
    post(
        &app,
        &client,
        p,
        json!({ "category": "treatment", "body": "足の写真", "attachments": [id] }),
    )
    .await;
    let file_url = patient_url(&app, p, &format!("/attachments/{id}"));
    let response = client.get(&file_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "downloading from S3");
    let clear = response.bytes().await.unwrap().to_vec();
    assert!(clear.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(clear.len() as i64, file["size"].as_i64().unwrap());
    let response = client
        .get(format!("{file_url}/thumbnail"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the thumbnail from S3");

    // The objects are in the bucket, named by IDs, encrypted.
    let objects = bucket_objects(&moto, bucket).await;
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    let object = format!("attachments/{p}/{id}");
    assert!(keys.contains(&object.as_str()), "the file is in the bucket");
    assert!(
        keys.contains(&format!("{object}.thumb").as_str()),
        "so is its thumbnail"
    );
    assert!(keys.iter().all(|k| k.starts_with("attachments/")));
    assert!(
        !app.settings.files_dir().join("attachments").exists(),
        "nothing on local disk"
    );
    // Read back signed, through the server's own store (moto refuses anonymous reads): the
    // bytes kept in the bucket, as listed there.
    let sealed = app
        .files
        .get(&object)
        .await
        .expect("the object in the bucket");
    let listed_size = objects
        .iter()
        .find(|(k, _)| *k == object)
        .map(|(_, size)| *size)
        .expect("the object's size in the listing");
    assert_eq!(sealed.len(), listed_size, "the bytes moto keeps");
    assert!(!sealed.is_empty());
    assert!(!contains(&sealed, &clear), "the object is not the PNG");
    assert!(!contains(&sealed, b"IHDR") && !contains(&sealed, b"\x89PNG"));
    assert!(!contains(&sealed, "足の写真".as_bytes()));
}
