//! Renders realistic notebooks with the machine's Japanese font and reads the PDFs back.
//!
//! These tests need a Japanese font (`apt-get install fonts-noto-cjk`); without one they fail
//! with that hint rather than skip. Set `RENRAKUCHO_EXPORT_SAMPLE=/tmp/sample.pdf` to keep the
//! 40-entry sample for looking at.

use std::path::Path;
use std::sync::OnceLock;

use renrakucho_pdf::{notebook_pdf, ExportEntry, ExportError, NotebookExport, PdfFont};

const FOOTER: &str = "参照用の写しです。原本は各施設の記録です（第15条）";

/// Loaded once for all tests, as the server would; a missing font fails every test with the
/// install hint.
fn font() -> &'static PdfFont {
    static FONT: OnceLock<Result<PdfFont, String>> = OnceLock::new();
    match FONT.get_or_init(|| PdfFont::discover().map_err(|e| e.to_string())) {
        Ok(font) => font,
        Err(e) => panic!("{e}"),
    }
}

const BODIES: &[&str] = &[
    "本日14時に訪問。ご本人は居間で座位にて過ごされていた。昼食は主食を半分、副菜はほぼ全量摂取とのこと。\
     水分は午前中にお茶をコップ2杯。「夜中に何度も目が覚める」との訴えあり、日中の活動量を増やせるよう\
     デイサービスの利用日を相談していきたい。下肢の浮腫は前回と比べて軽減している。",
    "服薬カレンダーを確認しました。朝・昼の分は飲めていますが、夕の分が2日分残っていました。\n\
     ご家族（長女）と相談し、夕食後にヘルパーさんが声かけする形に変更します。\n\n\
     ケアマネジャーさんにも共有お願いします。",
    "Dr. Sato: BP stable, continue amlodipine 5mg. HbA1c 7.2% (2026-11-01). \
     次回採血は12月第2週を予定。Please check the SpO2 trend on the next visit.",
    "入浴介助時、仙骨部に直径約2cmの発赤を確認。押しても消退しないため、褥瘡（ステージI）の可能性あり。\
     体位変換の間隔を2時間ごとに見直し、エアマットの設定も確認しました。訪問看護で経過を追います。\
     写真を添付します。",
    "明日の訪問は10:30に変更になりました。よろしくお願いします。",
    "リハビリ：室内歩行（手すり使用）で居間から台所まで往復3回。ふらつきなし。\
     立ち上がりは一部介助。本人より「もう少し外を歩きたい」との希望あり、天候の良い日に玄関先までの\
     屋外歩行を試みる予定です。転倒に注意しつつ、ご家族にも見守りの方法をお伝えしました。",
];

const CATEGORIES: &[&str] = &["訪問記録", "服薬", "連絡", "褥瘡・皮膚", "リハビリ", "食事"];
const AUTHORS: &[&str] = &[
    "佐藤 健一（医師）泉中央在宅クリニック",
    "鈴木 美穂（看護師）みどり訪問看護ステーション",
    "高橋 誠（理学療法士）泉リハビリセンター",
    "田中 由美（介護福祉士）ひまわりヘルパーステーション",
    "伊藤 聡（薬剤師）中央薬局 泉店",
];

fn sample(entries: usize) -> NotebookExport {
    let entries = (0..entries)
        .map(|i| {
            let mut body = BODIES[i % BODIES.len()].to_string();
            if i % 7 == 3 {
                // A long entry: several paragraphs, to span pages.
                for k in 0..6 {
                    body.push_str(&format!("\n（追記{k}）"));
                    body.push_str(BODIES[(i + k) % BODIES.len()]);
                }
            }
            ExportEntry {
                created_at: format!("2026-{:02}-{:02} {:02}:{:02}", 10 + i / 30, 1 + i % 28, 9 + i % 9, (i * 7) % 60),
                category: CATEGORIES[i % CATEGORIES.len()].to_string(),
                priority: if i % 5 == 0 { "至急" } else { "通常" }.to_string(),
                author: AUTHORS[i % AUTHORS.len()].to_string(),
                body,
                vitals: (i % 2 == 0).then(|| {
                    "体温 36.8℃ / 血圧 128/76 mmHg / 脈拍 72 / SpO2 97% / 体重 48.2 kg".to_string()
                }),
                reply_to: (i % 3 == 1).then(|| format!("2026-10-{:02} 鈴木（看護師）「服薬カレンダーを確認しました…」", 1 + i % 28)),
                edited: (i % 4 == 2).then(|| "2回修正（最終 2026-11-24 10:00）".to_string()),
                attachments: if i % 6 == 3 {
                    vec![
                        "sacral_redness_20261103.jpg".to_string(),
                        "服薬カレンダー_11月.pdf".to_string(),
                        "a_very_long_file_name_without_any_spaces_that_is_wider_than_one_whole_line_of_the_page_2026-11-25_scan_0001_final_v2.pdf".to_string(),
                    ]
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    NotebookExport {
        title: "連絡帳（参照用の写し）".to_string(),
        patient_name: "山田 花子".to_string(),
        patient_kana: "ヤマダ ハナコ".to_string(),
        birth_date: "1938-04-12（88歳）".to_string(),
        sex: "女性".to_string(),
        care_level: "要介護3".to_string(),
        exported_by: "泉中央在宅クリニック 佐藤 健一（医師）".to_string(),
        exported_at: "2026-11-25 14:03".to_string(),
        entries,
    }
}

/// The text of each page, as a PDF reader extracts it (through the font's ToUnicode map).
fn page_texts(pdf: &[u8]) -> Vec<String> {
    let doc = lopdf::Document::load_mem(pdf).expect("the output parses as PDF");
    let pages = doc.get_pages();
    pages
        .keys()
        .map(|n| doc.extract_text(&[*n]).expect("text extracts"))
        .collect()
}

/// Extracted text without the spaces and newlines a reader inserts between text runs.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn forty_entries_render_to_a_small_multi_page_pdf() {
    let font = font();
    let export = sample(40);
    let pdf = notebook_pdf(&export, font).expect("renders");
    if let Some(path) = std::env::var_os("RENRAKUCHO_EXPORT_SAMPLE") {
        std::fs::write(path, &pdf).expect("sample written");
    }

    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    assert!(
        pdf.len() < 1024 * 1024,
        "{} bytes: is the font subset?",
        pdf.len()
    );

    let pages = page_texts(&pdf);
    let total = pages.len();
    assert!(total > 1, "only {total} page(s)");
    // Entries never vanish: the text on the pages covers all of them.
    let all = squeeze(&pages.concat());
    for needle in [
        "連絡帳（参照用の写し）",
        "山田花子（ヤマダハナコ）",
        "要介護3",
        "泉中央在宅クリニック佐藤健一（医師）",
        "仙骨部に直径約2cmの発赤を確認",
        "褥瘡（ステージI）の可能性あり",
        "HbA1c7.2%",
        "体温36.8℃/血圧128/76mmHg/脈拍72/SpO297%/体重48.2kg",
        "2回修正（最終2026-11-2410:00）",
        "服薬カレンダー_11月.pdf",
        "の記録の続き",
    ] {
        assert!(all.contains(&squeeze(needle)), "missing {needle:?}");
    }
    for entry in &export.entries {
        assert!(
            all.contains(&squeeze(&entry.created_at)),
            "missing entry {}",
            entry.created_at
        );
    }
    // Every page has the footer and its number.
    for (i, text) in pages.iter().enumerate() {
        let text = squeeze(text);
        assert!(text.contains(FOOTER), "page {} has no footer", i + 1);
        assert!(
            text.contains(&format!("{}/{}", i + 1, total)),
            "page {} has no number",
            i + 1
        );
    }
    eprintln!("40 entries: {} pages, {} bytes", total, pdf.len());
}

#[test]
fn output_is_deterministic() {
    let font = font();
    let export = sample(8);
    assert_eq!(
        notebook_pdf(&export, font).unwrap(),
        notebook_pdf(&export, font).unwrap()
    );
}

#[test]
fn an_empty_notebook_is_one_page() {
    let font = font();
    let export = NotebookExport {
        entries: Vec::new(),
        ..sample(0)
    };
    let pdf = notebook_pdf(&export, font).unwrap();
    let pages = page_texts(&pdf);
    assert_eq!(pages.len(), 1);
    let text = squeeze(&pages[0]);
    assert!(text.contains("記録はありません。"));
    assert!(text.contains("1/1"));
}

#[test]
fn one_very_long_entry_continues_over_pages() {
    let font = font();
    let mut export = sample(1);
    let paragraph = BODIES[0].repeat(3);
    export.entries[0].body = (0..20)
        .map(|_| paragraph.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let pdf = notebook_pdf(&export, font).unwrap();
    let pages = page_texts(&pdf);
    assert!(pages.len() >= 3, "{} pages", pages.len());
    for page in &pages[1..] {
        assert!(squeeze(page).contains("の記録の続き"));
    }
}

#[test]
fn the_default_font_is_japanese() {
    let font = font();
    let noto = Path::new("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc");
    if std::env::var_os(PdfFont::ENV).is_none() && font.source() == noto {
        assert_eq!(font.index(), 0);
        assert_eq!(font.family_name(), "Noto Sans CJK JP");
    }
}

#[test]
fn from_file_on_a_missing_path_says_what_to_install() {
    let err =
        PdfFont::from_file(Path::new("/nonexistent/fonts/NotoSansCJK-Regular.ttc"), 0).unwrap_err();
    assert!(matches!(err, ExportError::FontUnreadable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/fonts/NotoSansCJK-Regular.ttc"),
        "{msg}"
    );
    assert!(msg.contains("apt-get install fonts-noto-cjk"), "{msg}");
}

#[test]
fn a_font_without_japanese_is_refused() {
    let dejavu = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    if !dejavu.exists() {
        return; // fonts-dejavu-core is not part of what this crate needs
    }
    let err = PdfFont::from_file(dejavu, 0).unwrap_err();
    assert!(matches!(err, ExportError::FontInvalid { .. }), "{err:?}");
}

#[test]
fn a_face_index_past_the_collection_is_refused() {
    let font = font();
    let err = PdfFont::from_file(font.source(), 99).unwrap_err();
    assert!(matches!(err, ExportError::FontInvalid { .. }), "{err:?}");
}
