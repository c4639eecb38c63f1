//! Free text from the log (reasons, notes, commits, config values, hook output) as data, never
//! as terminal control: what every front end prints or logs goes through [`escape`] or
//! [`env_value`]. JSON needs none of this: serde_json escapes on its own.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: C0 and C1 controls and DEL (ESC starts CSI and OSC
/// sequences, CR and LF forge lines), the Unicode line and paragraph separators, and the
/// bidirectional marks and overrides that reorder what a reader sees.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Free text as data: every [`is_unsafe`] character written as a visible escape (`\n`, `\r`,
/// `\t`, else `\u{1b}`), so one field stays on one line and cannot drive the terminal.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_where(text, is_unsafe)
}

/// [`escape`], but keeping the line ends: for whole blocks of human output whose lines hoist
/// laid out itself (its fields are escaped already; this is the last guard at the door).
pub fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| c != '\n' && is_unsafe(c))
}

fn escape_where(text: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// A config value as a `.env` file holds it: bare when every character is in a safe set that
/// every `.env` parser reads literally, else double-quoted with `\\`, `\"`, `\$`, `` \` ``, `\n`,
/// `\r`, `\t` escaped (and any other unsafe character as `\u{..}`): one line per key, always.
pub fn env_value(value: &str) -> Cow<'_, str> {
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-./:@,+=%<>".contains(c);
    if value.chars().all(bare) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c if is_unsafe(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any character, with the dangerous ones (C0, DEL, C1, separators, bidi) drawn often.
    pub(crate) fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => any::<char>(),
            2 => (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
            1 => (0x7fu32..=0x9f).prop_map(|c| char::from_u32(c).unwrap()),
            1 => prop::sample::select(vec![
                '\u{1b}', '\n', '\r', '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{200f}',
                '\\', '"', '$', '`', '=', '#', ' ', 'é', '漢', '\u{301}',
            ]),
            3 => prop::char::range('a', 'z'),
        ]
    }

    pub(crate) fn hostile_text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(hostile_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
    }

    pub(crate) fn assert_no_control(text: &str) {
        if let Some(c) = text.chars().find(|&c| c != '\n' && is_unsafe(c)) {
            panic!("{c:?} reached the output: {text:?}");
        }
    }

    /// What `env_value` wrote, read back as a `.env` parser reads a double-quoted value.
    fn read_env_value(text: &str) -> String {
        let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
            return text.to_string();
        };
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().expect("an escape is complete") {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    assert_eq!(chars.next(), Some('{'));
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                c => out.push(c),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// An escaped field is one line of visible text, and text without anything unsafe is
        /// shown as it is.
        #[test]
        fn escaped_text_is_one_line_without_control(text in hostile_text(200)) {
            let escaped = escape(&text);
            prop_assert!(!escaped.chars().any(is_unsafe), "{:?}", escaped);
            if !text.chars().any(is_unsafe) {
                prop_assert_eq!(escaped.as_ref(), text.as_str());
            }
        }

        /// A config value is one line, without control, and reads back exactly as set.
        #[test]
        fn env_values_are_one_line_and_read_back(value in hostile_text(200)) {
            let shown = env_value(&value);
            prop_assert!(!shown.chars().any(is_unsafe), "{:?}", shown);
            prop_assert_eq!(read_env_value(&shown), value);
        }

        /// Blocks of human output keep the line ends hoist laid out, and nothing else unsafe.
        #[test]
        fn human_blocks_keep_their_lines_only(text in hostile_text(200)) {
            let shown = escape_keeping_lines(&text);
            assert_no_control(&shown);
            prop_assert_eq!(shown.matches('\n').count(), text.matches('\n').count());
        }
    }

    #[test]
    fn config_values_are_quoted_as_a_dotenv_file_holds_them() {
        assert_eq!(
            env_value("postgres://db:5432/app"),
            "postgres://db:5432/app"
        );
        assert_eq!(env_value(""), "");
        assert_eq!(env_value("<redacted>"), "<redacted>");
        assert_eq!(env_value("a b"), "\"a b\"");
        assert_eq!(
            env_value("x\nDATABASE_URL=evil"),
            "\"x\\nDATABASE_URL=evil\""
        );
        assert_eq!(env_value("$HOME \"q\" \\"), "\"\\$HOME \\\"q\\\" \\\\\"");
        assert_eq!(env_value("\u{1b}[31m"), "\"\\u{1b}[31m\"");
    }
}
