//! Attachments: cleaned of their metadata, refused when they are not what they claim, stored
//! encrypted (on local disk and in an S3 bucket) and sent back as downloads, never inline.

use renrakucho_testkit::photos::{phone_jpeg, GPS_IFD_ENTRY, GPS_MARKER};

use super::*;

#[tokio::test]
async fn attachments_are_cleaned_stored_encrypted_and_sent_back_as_attachments() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let name = "褥瘡の写真 1.png";

    let png = uploaded(
        &app,
        &net.nurse_c,
        p,
        "image/png",
        name,
        renrakucho_testkit::PNG_1X1.to_vec(),
    )
    .await;
    assert_eq!(png["file_name"], name);
    assert_eq!(png["media_type"], "image/png");
    assert_eq!(png["has_thumbnail"], true);
    assert!(png["size"].as_i64().unwrap() > 0);
    let png_id = id_of(&png);

    let photo = phone_jpeg();
    assert!(contains(&photo, b"Exif\0\0") && contains(&photo, GPS_MARKER));
    let jpeg = uploaded(
        &app,
        &net.nurse_c,
        p,
        "image/jpeg",
        "C:\\写真\\自宅にて.jpg",
        photo,
    )
    .await;
    assert_eq!(jpeg["media_type"], "image/jpeg");
    assert_eq!(jpeg["file_name"], "自宅にて.jpg", "the path is dropped");
    let jpeg_id = id_of(&jpeg);

    // What is not a photo or a PDF, whatever it claims: 422 on `file`.
    invalid(
        upload(
            &app,
            &net.nurse_c,
            p,
            Some("image/png"),
            "写真.png",
            b"just some text, named like a photo".to_vec(),
        )
        .await,
        "file",
        "a text file sent as image/png",
    )
    .await;
    invalid(
        upload(
            &app,
            &net.nurse_c,
            p,
            Some("image/png"),
            "空.png",
            Vec::new(),
        )
        .await,
        "file",
        "an empty file",
    )
    .await;
    let cut = renrakucho_testkit::PNG_1X1[..40].to_vec();
    invalid(
        upload(&app, &net.nurse_c, p, Some("image/png"), "途中.png", cut).await,
        "file",
        "a cut-off PNG",
    )
    .await;
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
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await;
        let f = failure(response).await;
        assert_eq!(
            (f.status, f.code.as_str()),
            (415, "unsupported_media_type"),
            "{content_type:?}"
        );
    }

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

    let entry = post(
        &app,
        &net.nurse_c,
        p,
        json!({ "category": "treatment", "body": "褥瘡の処置、写真を添付", "attachments": [png_id, jpeg_id] }),
    )
    .await;
    let files = entry["attachments"].as_array().unwrap();
    let mut listed: Vec<(String, String)> = files
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
        (png_id.clone(), name.to_string()),
        (jpeg_id.clone(), "自宅にて.jpg".to_string()),
    ];
    expected.sort();
    assert_eq!(listed, expected, "the entry lists its files");

    // Downloads: as an attachment, never sniffed, never cached.
    for client in [&net.nurse_c, &net.member_c] {
        let response = client.get(&png_url).send().await.unwrap();
        assert_eq!(response.status(), 200, "downloading the PNG");
        assert_eq!(header(&response, "content-type"), "image/png");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-store");
        let disposition = header(&response, "content-disposition");
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        assert!(
            disposition.contains(&format!("filename=\"attachment-{png_id}.png\"")),
            "{disposition}"
        );
        let encoded = disposition
            .split("filename*=UTF-8''")
            .nth(1)
            .expect("filename*");
        assert_eq!(percent_decode(encoded.trim()), name);
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

    // The unrelated hospital: 404, like a file that does not exist.
    for url in [
        png_url.clone(),
        format!("{png_url}/thumbnail"),
        jpeg_url.clone(),
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
    assert!(!contains(&sealed, renrakucho_testkit::PNG_1X1));
    assert!(dir.join(format!("attachments/{p}/{png_id}.thumb")).exists());
    let all = stored_files(&app);
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
            name.as_bytes(),
        ] {
            assert!(!contains(&bytes, secret), "a stored file holds plaintext");
        }
    }
}

#[tokio::test]
async fn attachments_are_kept_encrypted_in_an_s3_bucket() {
    let moto = renrakucho_testkit::KmsEmulator::start().await;
    let bucket = "renrakucho-notebook-files";
    let http = Client::new();
    let response = http
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
    let app = spawn_app_with(|s| {
        s.file_store = renrakucho_server::config::FileStoreKind::S3;
        s.s3_bucket = Some(bucket.into());
        s.s3_region = Some("ap-northeast-1".into());
        s.s3_endpoint = Some(endpoint);
    })
    .await;
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
        renrakucho_testkit::PNG_1X1.to_vec(),
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
    let response = client
        .get(patient_url(&app, p, &format!("/attachments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "downloading from S3");
    let clear = response.bytes().await.unwrap().to_vec();
    assert!(clear.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(clear.len() as i64, file["size"].as_i64().unwrap());
    let response = client
        .get(patient_url(
            &app,
            p,
            &format!("/attachments/{id}/thumbnail"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the thumbnail from S3");

    // The objects are in the bucket, named by IDs, encrypted.
    let listing = http
        .get(format!("{}/{bucket}?list-type=2", moto.endpoint))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys: Vec<String> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect();
    let object = format!("attachments/{p}/{id}");
    assert!(keys.contains(&object), "the file is in the bucket");
    assert!(
        keys.contains(&format!("{object}.thumb")),
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
    let listed_size = listing
        .split("<Contents>")
        .find(|c| c.contains(&format!("<Key>{object}</Key>")))
        .and_then(|c| c.split("<Size>").nth(1))
        .and_then(|s| s.split("</Size>").next())
        .and_then(|s| s.parse::<usize>().ok())
        .expect("the object's size in the listing");
    assert_eq!(sealed.len(), listed_size, "the bytes moto keeps");
    assert!(!sealed.is_empty());
    assert!(!contains(&sealed, &clear), "the object is not the PNG");
    assert!(!contains(&sealed, b"IHDR") && !contains(&sealed, b"\x89PNG"));
    assert!(!contains(&sealed, "足の写真".as_bytes()));
}
