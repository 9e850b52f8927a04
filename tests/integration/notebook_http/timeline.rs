//! The timeline: keyset pages by cursor, newest first, each entry exactly once, and its
//! filters (category, urgency, facility, days); bad cursors refused with 422.

use super::*;

/// Posts `n` entries through the care domain (as the API would), oldest first; their IDs.
async fn bulk(
    app: &TestApp,
    patient: Uuid,
    n: usize,
    who: impl Fn(usize) -> Author,
    kind: impl Fn(usize) -> (Category, Priority),
) -> Vec<String> {
    let keyring = app.keyring().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (category, priority) = kind(i);
        let vitals = (category == Category::Vitals).then(|| Vitals {
            temperature_c: Some(36.0 + (i % 10) as f64 / 10.0),
            ..Vitals::default()
        });
        let entry = renrakucho_care::post_entry(
            &app.db,
            &keyring,
            &who(i),
            &renrakucho_store::audit::Origin::default(),
            PatientId::from_uuid(patient),
            NewEntryInput {
                content: EntryContent {
                    category,
                    priority,
                    body: EntryBody::parse(&format!("一括の記録 {i}")).unwrap(),
                    vitals,
                    mentions: Vec::new(),
                },
                reply_to: None,
                attachments: Vec::new(),
            },
        )
        .await
        .expect("posting through the care domain");
        ids.push(entry.id.to_string());
    }
    ids
}

#[tokio::test]
async fn the_timeline_pages_by_cursor_newest_first_and_filters() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let (doctor, member) = (author(&net.admin), author(&net.member));
    let by_member = |i: usize| i.is_multiple_of(4);
    let is_vitals = |i: usize| i.is_multiple_of(5);
    let is_urgent = |i: usize| i.is_multiple_of(7);
    let ids = bulk(
        &app,
        p,
        120,
        |i| {
            if by_member(i) {
                member.clone()
            } else {
                doctor.clone()
            }
        },
        |i| {
            (
                if is_vitals(i) {
                    Category::Vitals
                } else {
                    Category::Treatment
                },
                if is_urgent(i) {
                    Priority::Urgent
                } else {
                    Priority::Info
                },
            )
        },
    )
    .await;
    // The oldest twenty were written on 2026-01-10 (Japan time): moved there directly, with
    // the edit guard (which allows no such change) off for this one connection.
    let mut su = superuser(&app).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    let day = time::macros::datetime!(2026-01-10 09:00 +9);
    for (i, id) in ids.iter().take(20).enumerate() {
        sqlx::query("UPDATE entries SET created_at = $2 WHERE id = $1")
            .bind(Uuid::parse_str(id).unwrap())
            .bind(day + time::Duration::minutes(i as i64))
            .execute(&mut su)
            .await
            .unwrap();
    }
    drop(su);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..ids.len())
            .rev()
            .filter(|i| keep(*i))
            .map(|i| ids[i].clone())
            .collect()
    };

    // Pages of 50 (the default) by cursor: 50, 50, 20, each entry exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    let mut last_created: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map(|c| format!("cursor={c}"))
            .unwrap_or_default();
        let p = page(&app, &net.member_c, p, &query).await;
        let entries = p["entries"].as_array().unwrap();
        sizes.push(entries.len());
        for e in entries {
            let created = e["created_at"].as_str().unwrap().to_string();
            let at = time::OffsetDateTime::parse(
                &created,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            if let Some(previous) = &last_created {
                let before = time::OffsetDateTime::parse(
                    previous,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                assert!(at <= before, "newest first across pages");
            }
            last_created = Some(created);
            seen.push(id_of(e));
        }
        match p["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(sizes, vec![50, 50, 20]);
    assert_eq!(seen, newest_first, "every entry exactly once, newest first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 120, "no duplicates");

    // Other page sizes cover the same.
    assert_eq!(timeline_ids(&app, &net.member_c, p, "").await, newest_first);
    let small = page(&app, &net.member_c, p, "limit=7").await;
    assert_eq!(small["entries"].as_array().unwrap().len(), 7);

    // Filters, with and without cursors.
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "category=vitals").await,
        expect(&|i| is_vitals(i)),
        "category=vitals"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "category=vitals,treatment").await,
        newest_first,
        "two categories"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "urgent=true").await,
        expect(&|i| is_urgent(i)),
        "urgent=true"
    );
    let station = net.station_id();
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, p, &format!("facility={station}")).await,
        expect(&|i| by_member(i)),
        "facility=the member station"
    );
    assert_eq!(
        timeline_ids(
            &app,
            &net.doctor_c,
            p,
            &format!("facility={station}&urgent=true&category=vitals")
        )
        .await,
        expect(&|i| by_member(i) && is_urgent(i) && is_vitals(i)),
        "filters combine"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "from=2026-01-10&until=2026-01-10").await,
        expect(&|i| i < 20),
        "one day"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "from=2026-01-11").await,
        expect(&|i| i >= 20),
        "from a day on"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "until=2026-01-09").await,
        Vec::<String>::new(),
        "until before everything"
    );
    let filtered = page(&app, &net.member_c, p, "urgent=true&limit=5").await;
    let next = filtered["next"].as_str().expect("more urgent entries");
    let rest = page(
        &app,
        &net.member_c,
        p,
        &format!("urgent=true&limit=100&cursor={next}"),
    )
    .await;
    let mut both: Vec<String> = filtered["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    both.extend(rest["entries"].as_array().unwrap().iter().map(id_of));
    assert_eq!(both, expect(&|i| is_urgent(i)), "a filtered page's cursor");

    // Bad cursors and filters: 422 naming them.
    for (query, field) in [
        ("cursor=garbage", "cursor"),
        ("cursor=123_not-a-uuid", "cursor"),
        ("cursor=abc_0190aaaa000070008000000000000000", "cursor"),
        ("category=diary", "category"),
        ("from=2026-13-01", "from"),
        ("until=yesterday", "until"),
        ("from=2026-02-01&until=2026-01-01", "until"),
    ] {
        let response = net
            .member_c
            .get(patient_url(&app, p, &format!("/entries?{query}")))
            .send()
            .await
            .unwrap();
        invalid(response, field, query).await;
    }
}

/// A cursor whose time is out of range is as invalid as any other: 422, not a panic (nor, in
/// a release build, a wrapped-around time).
#[tokio::test]
async fn a_cursor_out_of_the_range_of_time_is_refused_with_422() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    note(&app, &net.doctor_c, p, "notice", "info", "一件目").await;
    for micros in [
        "99999999999999999999999999999999999999",
        "-99999999999999999999999999999999999999",
        "99999999999999999",
    ] {
        let url = patient_url(
            &app,
            p,
            &format!("/entries?cursor={micros}_0190aaaa000070008000000000000000"),
        );
        let response = match net.member_c.get(&url).send().await {
            Ok(response) => response,
            Err(e) => panic!("a cursor of {micros} µs: no answer at all ({e})"),
        };
        invalid(response, "cursor", micros).await;
    }
}
