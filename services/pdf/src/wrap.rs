//! Line breaking for Japanese mixed with ASCII, by measured width.
//!
//! Japanese has no spaces, so a line may break between any two characters, except that some
//! characters may not start a line (、。」 small kana …) and some may not end one (「（ …):
//! 禁則処理. A run of ASCII letters, digits and signs ("SpO2", "128/76", a file name) is kept
//! whole and breaks at spaces, unless it is wider than a whole line, when it breaks anywhere.

/// May not start a line (行頭禁則): closing brackets, punctuation, small kana, the long-vowel mark,
/// iteration marks, units that belong to the number before them.
fn no_start(c: char) -> bool {
    matches!(
        c,
        '、' | '。'
            | '，'
            | '．'
            | '・'
            | '：'
            | '；'
            | '？'
            | '！'
            | '）'
            | '」'
            | '』'
            | '】'
            | '〕'
            | '〉'
            | '》'
            | '］'
            | '｝'
            | '〙'
            | '〗'
            | '’'
            | '”'
            | 'ー'
            | '〜'
            | '～'
            | '…'
            | '‥'
            | '々'
            | 'ゝ'
            | 'ゞ'
            | 'ヽ'
            | 'ヾ'
            | 'ぁ'
            | 'ぃ'
            | 'ぅ'
            | 'ぇ'
            | 'ぉ'
            | 'っ'
            | 'ゃ'
            | 'ゅ'
            | 'ょ'
            | 'ゎ'
            | 'ゕ'
            | 'ゖ'
            | 'ァ'
            | 'ィ'
            | 'ゥ'
            | 'ェ'
            | 'ォ'
            | 'ッ'
            | 'ャ'
            | 'ュ'
            | 'ョ'
            | 'ヮ'
            | 'ヵ'
            | 'ヶ'
            | '℃'
            | '％'
            | '‰'
            | ')'
            | ']'
            | '}'
            | ','
            | '.'
            | ':'
            | ';'
            | '!'
            | '?'
            | '%'
    )
}

/// May not end a line (行末禁則): opening brackets and quotes.
fn no_end(c: char) -> bool {
    matches!(
        c,
        '（' | '「'
            | '『'
            | '【'
            | '〔'
            | '〈'
            | '《'
            | '［'
            | '｛'
            | '〘'
            | '〖'
            | '‘'
            | '“'
            | '('
            | '['
            | '{'
    )
}

/// Hangs into the right margin rather than start a line (ぶら下げ): it is narrow in ink, and
/// pushing a whole character down with it would leave a ragged short line.
fn hangs(c: char) -> bool {
    matches!(c, '、' | '。' | '，' | '．')
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// ASCII spaces: a break opportunity, dropped at the end and start of a wrapped line.
    Space,
    /// A run of printable ASCII without spaces, kept together where possible.
    Word,
    /// Any other single character (kanji, kana, full-width signs): breakable around it.
    Char,
}

#[derive(Clone, Copy, Debug)]
struct Unit<'a> {
    text: &'a str,
    width: f32,
    kind: Kind,
}

impl Unit<'_> {
    fn first(&self) -> char {
        self.text.chars().next().unwrap_or(' ')
    }
    fn last(&self) -> char {
        self.text.chars().next_back().unwrap_or(' ')
    }
}

fn units<'a>(text: &'a str, advance: &impl Fn(char) -> f32) -> Vec<Unit<'a>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let kind = if c == ' ' {
            Kind::Space
        } else if c.is_ascii_graphic() {
            Kind::Word
        } else {
            Kind::Char
        };
        let mut end = start + c.len_utf8();
        let mut width = advance(c);
        if kind != Kind::Char {
            while let Some(&(i, next)) = chars.peek() {
                let same = match kind {
                    Kind::Space => next == ' ',
                    _ => next.is_ascii_graphic(),
                };
                if !same {
                    break;
                }
                width += advance(next);
                end = i + next.len_utf8();
                chars.next();
            }
        }
        out.push(Unit {
            text: &text[start..end],
            width,
            kind,
        });
    }
    out
}

/// Whether a line may break between `before` and `after`.
fn may_break(before: &Unit<'_>, after: &Unit<'_>) -> bool {
    if before.kind == Kind::Space || after.kind == Kind::Space {
        return true;
    }
    !no_start(after.first()) && !no_end(before.last())
}

/// How far back a line is shortened to satisfy 禁則 before giving up and breaking anyway.
const MAX_CARRY: usize = 3;

struct Lines {
    out: Vec<String>,
}

impl Lines {
    fn flush(&mut self, line: &mut Vec<Unit<'_>>) {
        while line.last().is_some_and(|u| u.kind == Kind::Space) {
            line.pop();
        }
        self.out.push(line.iter().map(|u| u.text).collect());
        line.clear();
    }
}

fn width_of(line: &[Unit<'_>]) -> f32 {
    line.iter().map(|u| u.width).sum()
}

/// Breaks one paragraph (no newlines) into lines no wider than `max`, measuring each character
/// with `advance` (in the same unit as `max`). Returns at least one line (empty for empty input).
pub(crate) fn wrap(text: &str, max: f32, advance: impl Fn(char) -> f32) -> Vec<String> {
    // Rounding in the sums must not push a line that fits exactly onto two lines.
    let limit = max + 0.001;
    let mut lines = Lines { out: Vec::new() };
    let mut cur: Vec<Unit<'_>> = Vec::new();
    let mut width = 0.0_f32;
    let all = units(text, &advance);
    for (i, &unit) in all.iter().enumerate() {
        if unit.kind == Kind::Space && cur.is_empty() && !lines.out.is_empty() {
            continue; // the space the previous line broke at
        }
        if width + unit.width <= limit {
            width += unit.width;
            cur.push(unit);
            continue;
        }
        if unit.kind == Kind::Space {
            lines.flush(&mut cur);
            width = 0.0;
            continue;
        }
        // A hanging 。 followed by 」 would leave the 」 to start the next line: carry instead.
        let closes_next = all
            .get(i + 1)
            .is_some_and(|next| next.kind != Kind::Space && no_start(next.first()));
        if hangs(unit.first()) && !cur.is_empty() && !closes_next {
            cur.push(unit);
            lines.flush(&mut cur);
            width = 0.0;
            continue;
        }
        if unit.kind == Kind::Word && unit.width > limit {
            // Wider than a whole line (a long URL or file name): start it on a line of its own
            // and break it between characters.
            if !cur.is_empty() {
                lines.flush(&mut cur);
            }
            let mut start = 0;
            let mut piece = 0.0_f32;
            for (i, c) in unit.text.char_indices() {
                let w = advance(c);
                if piece + w > limit && i > start {
                    lines.out.push(unit.text[start..i].to_string());
                    start = i;
                    piece = 0.0;
                }
                piece += w;
            }
            cur.push(Unit {
                text: &unit.text[start..],
                width: piece,
                kind: Kind::Word,
            });
            width = piece;
            continue;
        }
        // Break before `unit`, or a little earlier where 禁則 forbids breaking right there.
        let mut at = cur.len();
        while at > 0 && cur.len() - at < MAX_CARRY {
            let after = if at == cur.len() { &unit } else { &cur[at] };
            if may_break(&cur[at - 1], after) {
                break;
            }
            at -= 1;
        }
        if at == 0 || cur.len() - at >= MAX_CARRY || width_of(&cur[at..]) + unit.width > limit {
            at = cur.len();
        }
        let carried = cur.split_off(at);
        if !cur.is_empty() {
            lines.flush(&mut cur);
        }
        cur = carried;
        if cur.first().is_some_and(|u| u.kind == Kind::Space) {
            cur.remove(0);
        }
        cur.push(unit);
        width = width_of(&cur);
    }
    if !cur.is_empty() || lines.out.is_empty() {
        lines.flush(&mut cur);
    }
    lines.out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    /// Full-width characters one unit wide, ASCII half.
    fn adv(c: char) -> f32 {
        if c.is_ascii() {
            0.5
        } else {
            1.0
        }
    }

    #[test]
    fn japanese_breaks_anywhere() {
        assert_eq!(wrap("あいうえお", 2.0, adv), ["あい", "うえ", "お"]);
    }

    #[test]
    fn empty_is_one_empty_line() {
        assert_eq!(wrap("", 10.0, adv), [""]);
    }

    #[test]
    fn punctuation_hangs_instead_of_starting_a_line() {
        assert_eq!(wrap("あいう。えお", 3.0, adv), ["あいう。", "えお"]);
        assert_eq!(wrap("あいう、えお", 3.0, adv), ["あいう、", "えお"]);
        // ... but not when a closing bracket follows, which would then start the next line.
        assert_eq!(wrap("あいう。」え", 3.0, adv), ["あい", "う。」", "え"]);
    }

    #[test]
    fn closing_bracket_and_small_kana_do_not_start_a_line() {
        assert_eq!(wrap("あいう」え", 3.0, adv), ["あい", "う」え"]);
        assert_eq!(wrap("あいうっと", 3.0, adv), ["あい", "うっと"]);
        assert_eq!(wrap("あいうー", 3.0, adv), ["あい", "うー"]);
    }

    #[test]
    fn opening_bracket_does_not_end_a_line() {
        assert_eq!(wrap("あい「う」", 3.0, adv), ["あい", "「う」"]);
    }

    #[test]
    fn ascii_breaks_at_spaces() {
        assert_eq!(wrap("hello world foo", 5.5, adv), ["hello world", "foo"]);
        assert_eq!(wrap("hello world foo", 4.0, adv), ["hello", "world", "foo"]);
    }

    #[test]
    fn too_long_words_break_anywhere() {
        assert_eq!(wrap("abcdefghij", 2.0, adv), ["abcd", "efgh", "ij"]);
        assert_eq!(
            wrap("あ abcdefghij", 2.0, adv),
            ["あ", "abcd", "efgh", "ij"]
        );
    }

    #[test]
    fn ascii_runs_stay_whole_inside_japanese() {
        // "SpO2" is 2.0 wide: it moves down whole rather than split as "Sp|O2".
        assert_eq!(wrap("あいSpO2は97%", 3.0, adv), ["あい", "SpO2は", "97%"]);
    }

    #[test]
    fn unit_sign_stays_with_its_number() {
        assert_eq!(wrap("体温36.8℃", 3.0, adv), ["体温", "36.8℃"]);
    }

    #[test]
    fn nothing_is_lost() {
        let text = "本日訪問。「食事は半分ほど」とのこと（家族より）。SpO2 97%、体温 36.8℃。ゆっくりと歩行できている";
        for max in [1.0_f32, 2.0, 3.5, 7.0, 12.0] {
            let lines = wrap(text, max, adv);
            let joined: String = lines.concat();
            let expect: String = text.chars().filter(|c| *c != ' ').collect();
            let got: String = joined.chars().filter(|c| *c != ' ').collect();
            assert_eq!(got, expect, "max {max}");
        }
    }
}
