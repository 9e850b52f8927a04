//! The rules every piece of text from outside shares, in one place: which control characters
//! it may hold, when it counts as empty although it is not, and how an uploaded file's name is
//! made safe to show.
//!
//! Control characters (C0, DEL, C1) have no business in a name, a code or a search: a NUL
//! cannot even be stored in PostgreSQL `text`, so it must be refused before it gets that far,
//! as a 422 naming the field rather than as the database's 500. Only multi-line text (a
//! notebook entry, a reason) keeps line breaks and tabs. Invisible characters (zero-width
//! spaces and joiners, bidirectional controls) make a name that looks empty, or a file name
//! that reads backwards (`\u{202E}gnp.exe` shows as `exe.png`): a name must show something,
//! and a file name loses them.

use unicode_normalization::UnicodeNormalization;

use crate::InvalidValue;

/// Whether a text may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// A name, a code, a search: no control character at all.
    One,
    /// A body of text: line breaks (`\n`, and `\r` of a browser's `\r\n`) and tabs stay.
    Many,
}

/// A control character `lines` does not allow: C0, DEL and C1 (Unicode category Cc), with
/// `\n`, `\r` and `\t` allowed in [`Lines::Many`].
pub fn is_refused_control(c: char, lines: Lines) -> bool {
    c.is_control() && !(lines == Lines::Many && matches!(c, '\n' | '\r' | '\t'))
}

/// A character that shows nothing and may change how the text around it is shown: zero-width
/// space, non-joiner and joiner, word joiner and the invisible operators, the byte-order mark,
/// the Mongolian vowel separator, soft hyphen, and every bidirectional control (marks,
/// embeddings, overrides and isolates).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

fn control_message(field: &str) -> String {
    format!(
        "「{field}」に使えない制御文字が含まれています / {field} contains a control character that is not allowed"
    )
}

/// Refuses `text` when it holds a control character `lines` does not allow, naming `field`.
pub fn refuse_controls(field: &'static str, text: &str, lines: Lines) -> Result<(), InvalidValue> {
    if text.chars().any(|c| is_refused_control(c, lines)) {
        return Err(InvalidValue::new(field, control_message(field)));
    }
    Ok(())
}

/// As [`refuse_controls`], for a field whose name is only known at run time (a JSON path, a
/// form field): the message, for the caller to pair with the name.
pub fn control_refusal(field: &str, text: &str, lines: Lines) -> Option<String> {
    text.chars()
        .any(|c| is_refused_control(c, lines))
        .then(|| control_message(field))
}

/// Refuses a non-empty `text` with nothing visible in it: only whitespace and invisible
/// characters. (An empty text is the caller's "required" case.)
pub fn refuse_invisible_only(field: &'static str, text: &str) -> Result<(), InvalidValue> {
    if !text.is_empty() && text.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(InvalidValue::new(
            field,
            format!(
                "「{field}」に表示される文字がありません（見えない文字だけです） / {field} has no visible characters"
            ),
        ));
    }
    Ok(())
}

/// Multi-line text as it is kept: NFKC (so full-width digits and half-width katakana do not
/// look different), a browser's `\r\n` (and a lone `\r`) as `\n`, trimmed. Refused, naming
/// `field`, when it holds a control character other than a line break or a tab: it is refused
/// rather than silently dropped, so the writer sees that what they sent was not what is kept.
/// The length is the caller's rule.
pub fn multi_line(field: &'static str, raw: &str) -> Result<String, InvalidValue> {
    let text: String = raw
        .nfkc()
        .collect::<String>()
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    refuse_controls(field, &text, Lines::Many)?;
    Ok(text.trim().to_string())
}

/// One line of text: NFKC, trimmed; refused, naming `field`, with any control character or
/// with nothing visible. The length is the caller's rule.
pub fn one_line(field: &'static str, raw: &str) -> Result<String, InvalidValue> {
    let text: String = raw.nfkc().collect::<String>().trim().to_string();
    refuse_controls(field, &text, Lines::One)?;
    refuse_invisible_only(field, &text)?;
    Ok(text)
}

/// The longest file name kept, in characters.
pub const FILE_NAME_MAX: usize = 200;

/// An uploaded file's name as it will be shown: the last path component, without control or
/// invisible characters (so the name reads as it is), trimmed, at most [`FILE_NAME_MAX`]
/// characters. `Ok(None)` when no name was given; refused (`file_name`) when a name was given
/// but nothing of it is left to show.
pub fn file_name(raw: &str) -> Result<Option<String>, InvalidValue> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .collect();
    let cleaned: String = cleaned.trim().chars().take(FILE_NAME_MAX).collect();
    let cleaned = cleaned.trim_end().to_string();
    if cleaned.is_empty() {
        return Err(InvalidValue::new(
            "file_name",
            "ファイル名に表示できる文字がありません / the file name has no characters that can be shown",
        ));
    }
    Ok(Some(cleaned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_refuses_every_control_and_many_lines_keep_breaks_and_tabs() {
        for bad in [
            "a\0b", "a\u{7}", "a\u{7F}", "a\u{85}b", "a\u{9B}", "a\nb", "a\tb",
        ] {
            let e = refuse_controls("login_id", bad, Lines::One).unwrap_err();
            assert_eq!(e.field, "login_id");
            assert!(e.message.starts_with("「login_id」"), "{}", e.message);
        }
        assert!(refuse_controls("body", "一行目\r\n二行目\tです", Lines::Many).is_ok());
        for bad in ["a\0b", "a\u{1B}[31m", "a\u{85}", "a\u{7F}"] {
            assert!(
                refuse_controls("body", bad, Lines::Many).is_err(),
                "{bad:?}"
            );
        }
        assert!(refuse_controls("name", "山田 太郎", Lines::One).is_ok());
    }

    #[test]
    fn multi_line_text_keeps_breaks_as_newlines_and_refuses_other_controls() {
        assert_eq!(
            multi_line("body", "  一行目\r\n二行目\r三行目\tです\n ").unwrap(),
            "一行目\n二行目\n三行目\tです"
        );
        assert_eq!(multi_line("body", "１２３ｱ").unwrap(), "123ア");
        let e = multi_line("body", "本文\0").unwrap_err();
        assert_eq!(e.field, "body");
        assert!(multi_line("body", "色\u{1B}[31m").is_err());
        assert_eq!(one_line("signer_name", " 山田 花子 ").unwrap(), "山田 花子");
        assert!(one_line("signer_name", "山田\n花子").is_err());
        assert!(one_line("signer_name", "\u{200B}\u{200D}").is_err());
    }

    #[test]
    fn a_text_of_only_invisible_characters_shows_nothing() {
        for bad in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}\u{FEFF}",
            "\u{202E}\u{202A}\u{202B}\u{202C}\u{202D}",
            "\u{2066}\u{2067}\u{2068}\u{2069}",
            "\u{200E} \u{200F}",
        ] {
            let e = refuse_invisible_only("name", bad).unwrap_err();
            assert_eq!(e.field, "name");
        }
        assert!(refuse_invisible_only("name", "").is_ok());
        assert!(refuse_invisible_only("name", "田中\u{200B}").is_ok());
    }

    #[test]
    fn file_names_lose_paths_controls_and_direction_tricks() {
        assert_eq!(
            file_name("\u{202E}gnp.exe").unwrap().as_deref(),
            Some("gnp.exe")
        );
        assert_eq!(
            file_name("photo\u{200B}\u{2066}.jpg\u{2069}")
                .unwrap()
                .as_deref(),
            Some("photo.jpg")
        );
        assert_eq!(
            file_name("C:\\Users\\me\\写真.jpg").unwrap().as_deref(),
            Some("写真.jpg")
        );
        assert_eq!(
            file_name("../../etc/passwd").unwrap().as_deref(),
            Some("passwd")
        );
        assert_eq!(
            file_name("a\u{0}b\nc.pdf").unwrap().as_deref(),
            Some("abc.pdf")
        );
        assert_eq!(file_name("  ").unwrap(), None);
        assert_eq!(file_name("").unwrap(), None);
        for bad in [
            "\u{202E}",
            "\u{200B}\u{FEFF}",
            "dir/\u{202E} ",
            "\u{0}\u{1}",
        ] {
            assert_eq!(file_name(bad).unwrap_err().field, "file_name", "{bad:?}");
        }
        assert_eq!(
            file_name(&"あ".repeat(300))
                .unwrap()
                .unwrap()
                .chars()
                .count(),
            FILE_NAME_MAX
        );
    }
}
