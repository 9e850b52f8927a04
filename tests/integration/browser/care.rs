//! Care work through the portal on a phone: consent and the care team, the notebook.

use super::*;

#[tokio::test]
async fn consent_and_care_team_through_the_portal_on_a_phone() {
    let app = spawn_app().await;
    let clinic = app.seed_facility(FACILITY_CODE, FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&clinic, LOGIN, StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    let station = app
        .seed_facility("WEB-NURSE", FacilityKind::VisitingNurseStation)
        .await;
    app.seed_staff(
        &station,
        "tanaka",
        StaffRole::FacilityAdmin,
        Profession::Nurse,
    )
    .await;
    let patient = app
        .seed_patient(&doctor, "連絡 花子", "レンラク ハナコ")
        .await;
    let scan_dir = tempfile::tempdir().unwrap();
    let scan = scan_dir.path().join("consent.png");
    std::fs::write(&scan, renrakucho_testkit::PNG_1X1).unwrap();
    let scan = scan.to_string_lossy().to_string();
    let patient_path = format!("/patients/{}", patient.id.as_uuid());

    in_browser(&app, move |page| async move {
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, LOGIN, FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;

        page.click("a[href='/patients']").await;
        page.wait_for("form[role=search]").await;
        assert!(page.text().await.contains("連絡 花子"));
        assert_accessible_on_a_phone(&page, "the patient list").await;
        page.screenshot("patients").await;

        // Search by reading, in hiragana, finds her.
        let q = page.wait_for("#q").await;
        q.send_keys("れんらく").await.unwrap();
        page.click("form[role=search] button[type=submit]").await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !page
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("q=")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the search did not run"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        page.wait_for_text("連絡 花子").await;
        page.click(&format!("a[href='{patient_path}']")).await;
        page.wait_for("#profile-heading").await;
        assert!(page.text().await.contains("同意書は登録されていません"));

        // Record the signed consent with its scan.
        page.click("details.card summary").await;
        page.click("#signer_family").await;
        page.wait_for("#signer_name")
            .await
            .send_keys("連絡 一郎")
            .await
            .unwrap();
        page.wait_for("#signer_relation")
            .await
            .send_keys("長男")
            .await
            .unwrap();
        page.wait_for("#scan").await.send_keys(&scan).await.unwrap();
        page.click(&format!(
            "form[action='{patient_path}/consents'] button[type=submit]"
        ))
        .await;
        page.wait_for_text("同意書を登録しました").await;
        let text = page.text().await;
        assert!(text.contains("家族（長男）連絡 一郎"), "{text}");
        page.wait_for(&format!("a[href^='{patient_path}/consents/']"))
            .await;

        // Invite the nurse station from the directory.
        let select = page.wait_for("#facility_code").await;
        select
            .select_by_value("WEB-NURSE")
            .await
            .expect("choosing the nurse station");
        page.click(&format!(
            "form[action='{patient_path}/care-team/invite'] button[type=submit]"
        ))
        .await;
        page.wait_for_text("招待しました").await;
        assert!(page.text().await.contains("招待中"));
        assert_accessible_on_a_phone(&page, "the patient page").await;
        page.screenshot("patient").await;

        page.goto("/emergency").await;
        page.wait_for("#reason").await;
        assert_accessible_on_a_phone(&page, "the emergency page").await;
        page.screenshot("emergency").await;

        page.goto("/").await;
        page.click(&format!("{LOGOUT_FORM} button[type=submit]"))
            .await;
        page.wait_for(LOGIN_FORM).await;

        // The nurse station's administrator is told, accepts, and sees the patient.
        page.sign_in("WEB-NURSE", "tanaka", FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;
        assert!(page
            .text()
            .await
            .contains("ケアチームへの招待が1件あります"));
        page.click("a[href='/invitations']").await;
        page.wait_for("form[action$='/accept']").await;
        assert_accessible_on_a_phone(&page, "the invitations page").await;
        page.screenshot("invitations").await;
        page.click("form[action$='/accept'] button[type=submit]")
            .await;
        page.wait_for_text("承諾しました").await;
        // The authorizer follows the database's announcement within moments.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            page.goto(&patient_path).await;
            if page.text().await.contains("連絡 花子") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the accepted member does not see the patient within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(page.text().await.contains("家族（長男）連絡 一郎"));
    })
    .await;
}

#[tokio::test]
async fn writing_the_notebook_with_a_photo_replying_and_editing_on_a_phone() {
    let app = spawn_app().await;
    let clinic = app.seed_facility(FACILITY_CODE, FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(&clinic, LOGIN, StaffRole::FacilityAdmin, Profession::Doctor)
        .await;
    let patient = app
        .seed_patient(&doctor, "記録 太郎", "キロク タロウ")
        .await;
    let scan_dir = tempfile::tempdir().unwrap();
    let photo = scan_dir.path().join("傷の写真.png");
    std::fs::write(&photo, renrakucho_testkit::PNG_1X1).unwrap();
    let photo = photo.to_string_lossy().to_string();
    let notebook = format!("/patients/{}/notebook", patient.id.as_uuid());

    in_browser(&app, move |page| async move {
        page.goto("/login").await;
        page.sign_in(FACILITY_CODE, LOGIN, FIXTURE_PASSWORD).await;
        page.wait_for(LOGOUT_FORM).await;
        page.goto(&notebook).await;
        page.wait_for_text("記録はありません").await;

        page.click("details.card summary").await;
        page.wait_for("#category")
            .await
            .select_by_value("vitals")
            .await
            .unwrap();
        page.click("#priority_urgent").await;
        page.wait_for("#body")
            .await
            .send_keys("夕方から37.8度の発熱。水分はとれている。")
            .await
            .unwrap();
        page.js("document.querySelectorAll('details').forEach(d => d.open = true)")
            .await;
        for (id, value) in [("temperature", "37.8"), ("systolic", "130"), ("diastolic", "80")] {
            page.wait_for(&format!("#{id}")).await.send_keys(value).await.unwrap();
        }
        page.wait_for("#files").await.send_keys(&photo).await.unwrap();
        assert_accessible_on_a_phone(&page, "the notebook with its form open").await;
        page.click(&format!("form[action='{notebook}'] button[type=submit]")).await;
        page.wait_for_text("記録しました").await;
        let text = page.text().await;
        assert!(text.contains("至急"), "{text}");
        assert!(text.contains("体温 37.8℃ / 血圧 130/80 mmHg"), "{text}");
        assert!(text.contains("傷の写真.png"), "{text}");
        // The thumbnail is served and is a real image.
        let loaded = page
            .js("const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0")
            .await;
        assert_eq!(loaded, json!(true), "the photo's thumbnail loads");
        assert_accessible_on_a_phone(&page, "the notebook").await;
        page.screenshot("notebook").await;

        // Reply, then correct the entry: a second version, the first kept.
        page.click("a[href*='/entries/']").await;
        page.wait_for("#reply_body").await.send_keys("了解しました。明朝訪問します。").await.unwrap();
        page.click("form textarea#reply_body ~ button, form:has(#reply_body) button[type=submit]").await;
        page.wait_for_text("返信しました").await;
        page.js("document.querySelectorAll('details').forEach(d => d.open = true)")
            .await;
        let edit = page.wait_for("#edit_body").await;
        edit.clear().await.unwrap();
        edit.send_keys("夕方から37.8度の発熱。水分はとれている。解熱剤は未使用。")
            .await
            .unwrap();
        page.click("form[action$='/edit'] button[type=submit]").await;
        page.wait_for_text("修正しました").await;
        let text = page.text().await;
        assert!(text.contains("第2版"), "{text}");
        assert!(text.contains("第1版"), "{text}");
        assert!(text.contains("了解しました。明朝訪問します。"), "{text}");
        assert_accessible_on_a_phone(&page, "an entry").await;
        page.screenshot("entry").await;

        page.goto("/notifications").await;
        page.wait_for("#live_level").await;
        assert_accessible_on_a_phone(&page, "the notifications page").await;
        page.screenshot("notifications").await;
    })
    .await;
}
