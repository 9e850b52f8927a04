//! Consents with a real scan: stored encrypted and sent back as an attachment.

use super::*;

#[tokio::test]
async fn a_consent_with_a_scan_is_stored_encrypted_and_sent_back_as_an_attachment() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("SCAN-A", FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&clinic, "doctor", StaffRole::Staff, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&doctor, "走査 花子", "ソウサ ハナコ")
        .await
        .id
        .as_uuid();
    let client = app.client_for(&clinic, "doctor").await;
    let png = png_1x1();
    let consent = record_consent(&app, &client, patient, Some(&png)).await;

    let response = client
        .get(patient_url(&app, patient, "/consents"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listed = json_of(response).await;
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 1);
    let c = &listed[0];
    assert_eq!(c["id"], consent.to_string());
    assert_eq!(c["signer"], "family");
    assert_eq!(c["signer_name"], "試験 花子");
    assert_eq!(c["signer_relation"], "長女");
    assert_eq!(c["signed_on"], SIGNED_ON);
    assert_eq!(c["scope"], SCOPE);
    assert_eq!(c["collected_by"], clinic.id.as_uuid().to_string());
    assert_eq!(c["scan_media_type"], "image/png");
    assert!(c["withdrawn_at"].is_null());

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
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "image/png");
    assert!(
        header("content-disposition").starts_with("attachment"),
        "a download, never inline: {}",
        header("content-disposition")
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    // Cleaned like a notebook photo (decoded and encoded again: tests/integration/uploads.rs).
    let stored = response.bytes().await.unwrap();
    assert!(stored.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert_eq!(c["scan_size"], stored.len());

    // Bad input: a clear 422 naming the field, and nothing stored.
    let url = patient_url(&app, patient, "/consents");
    let mut body = consent_body(None);
    body["scan_base64"] = json!(base64(
        b"PNG\r\n<html><script>alert('not an image')</script></html>"
    ));
    let response = client.post(&url).json(&body).send().await.unwrap();
    invalid(response, "scan", "text pretending to be a PNG").await;

    let mut body = consent_body(None);
    body["scan_base64"] = json!("@@ not base64 @@");
    let response = client.post(&url).json(&body).send().await.unwrap();
    invalid(response, "scan_base64", "a scan that is not base64").await;

    let tomorrow = time::OffsetDateTime::now_utc().date() + time::Duration::days(2);
    let mut body = consent_body(Some(&png));
    body["signed_on"] = json!(tomorrow
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap());
    let response = client.post(&url).json(&body).send().await.unwrap();
    invalid(response, "signed_on", "a signing date in the future").await;

    for name in ["", "   "] {
        let mut body = consent_body(Some(&png));
        body["signer"]["name"] = json!(name);
        let response = client.post(&url).json(&body).send().await.unwrap();
        invalid(response, "signer_name", "a family signer without a name").await;
    }

    let after = json_of(client.get(&url).send().await.unwrap()).await;
    assert_eq!(after.as_array().unwrap().len(), 1, "no consent added");
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "one stored scan, nothing left behind");

    // On disk: the scan of the right consent, sealed.
    let file = &files[0];
    assert!(
        file.ends_with(format!("consents/{patient}/{consent}")),
        "{}",
        file.display()
    );
    let sealed = std::fs::read(file).unwrap();
    assert!(sealed.len() > png.len(), "an envelope around the scan");
    assert!(!contains(&sealed, &png), "the PNG readable on disk");
    assert!(
        !contains(&sealed, &png[..16]),
        "the PNG header readable on disk"
    );
    assert!(!contains(&sealed, b"IHDR") && !contains(&sealed, b"IDAT"));
}
