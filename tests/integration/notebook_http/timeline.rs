//! The timeline: keyset pages by cursor, newest first, each entry exactly once, and its
//! filters (category, urgency, facility, days); bad cursors and filters refused with 422.

use super::*;

/// Posts `n` entries through the care domain (as the API would), oldest first; their IDs.
async fn bulk(
    app: &TestApp,
    patient: Uuid,
    n: usize,
    who: impl Fn(usize) -> Writer,
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
        let entry = renrakucho_notebook::post_entry(
            &app.db,
            &keyring,
            &who(i).on(PatientId::from_uuid(patient)),
            &renrakucho_store::audit::Origin::default(),
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

/// Who wrote entry `i` of the 120, and what it is.
fn by_member(i: usize) -> bool {
    i.is_multiple_of(4)
}
fn is_vitals(i: usize) -> bool {
    i.is_multiple_of(5)
}
fn is_urgent(i: usize) -> bool {
    i.is_multiple_of(7)
}

/// 120 entries, oldest first: every fourth by the member station's nurse, every fifth a vital
/// sign, every seventh urgent; the oldest twenty written on 2026-01-10 (Japan time), the rest
/// today. Their IDs, oldest first.
async fn hundred_and_twenty_entries(app: &TestApp, net: &Net) -> Vec<String> {
    let (doctor, member) = (author(&net.admin), author(&net.member));
    let ids = bulk(
        app,
        net.patient,
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
    // Moved to that day directly, with the edit guard (which allows no such change) off for this
    // one connection.
    let mut su = superuser(app).await;
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
    ids
}

fn created_at(entry: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        entry["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// Follows the cursors with the default page size, asserting newest first across pages: the
/// size of each page and every entry ID in order.
async fn walk_pages(app: &TestApp, client: &Client, patient: Uuid) -> (Vec<usize>, Vec<String>) {
    let (mut sizes, mut seen) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    let mut last_created = None;
    loop {
        let query = cursor
            .as_ref()
            .map(|c| format!("cursor={c}"))
            .unwrap_or_default();
        let p = page(app, client, patient, &query).await;
        let entries = p["entries"].as_array().unwrap();
        sizes.push(entries.len());
        for e in entries {
            let at = created_at(e);
            if let Some(before) = last_created {
                assert!(at <= before, "newest first across pages");
            }
            last_created = Some(at);
            seen.push(id_of(e));
        }
        match p["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return (sizes, seen),
        }
    }
}

#[tokio::test]
async fn the_timeline_pages_by_cursor_newest_first_each_entry_once() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let ids = hundred_and_twenty_entries(&app, &net).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    // Pages of 50 (the default) by cursor: 50, 50, 20, each entry exactly once.
    let (sizes, seen) = walk_pages(&app, &net.member_c, p).await;
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
}

#[tokio::test]
async fn the_timeline_filters_by_category_urgency_facility_and_day() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let ids = hundred_and_twenty_entries(&app, &net).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..ids.len())
            .rev()
            .filter(|i| keep(*i))
            .map(|i| ids[i].clone())
            .collect()
    };

    // Filters, with and without cursors.
    let station = net.station_id();
    let (by_station, all_three) = (
        format!("facility={station}"),
        format!("facility={station}&urgent=true&category=vitals"),
    );
    let filters: [(&Client, &str, Vec<String>, &str); 8] = [
        (
            &net.member_c,
            "category=vitals",
            expect(&is_vitals),
            "category=vitals",
        ),
        (
            &net.member_c,
            "category=vitals,treatment",
            newest_first.clone(),
            "two categories",
        ),
        (
            &net.member_c,
            "urgent=true",
            expect(&is_urgent),
            "urgent=true",
        ),
        (
            &net.doctor_c,
            &by_station,
            expect(&by_member),
            "facility=the member station",
        ),
        (
            &net.doctor_c,
            &all_three,
            expect(&|i| by_member(i) && is_urgent(i) && is_vitals(i)),
            "filters combine",
        ),
        (
            &net.member_c,
            "from=2026-01-10&until=2026-01-10",
            expect(&|i| i < 20),
            "one day",
        ),
        (
            &net.member_c,
            "from=2026-01-11",
            expect(&|i| i >= 20),
            "from a day on",
        ),
        (
            &net.member_c,
            "until=2026-01-09",
            Vec::new(),
            "until before everything",
        ),
    ];
    for (client, filter, expected, what) in filters {
        assert_eq!(
            timeline_ids(&app, client, p, filter).await,
            expected,
            "{what}"
        );
    }
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
    assert_eq!(both, expect(&is_urgent), "a filtered page's cursor");
}

#[tokio::test]
async fn bad_cursors_and_filters_are_refused_with_422_naming_them() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    note(&app, &net.doctor_c, p, "notice", "info", "一件目").await;
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
