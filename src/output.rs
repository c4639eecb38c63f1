//! What hoist prints: the `--json` shapes of CLI.md (a public contract) and the human tables, and
//! the one way anything reaches stdout or stderr.
//!
//! Every byte hoist prints goes through [`write_stdout`] (via [`outln!`], [`out!`],
//! [`print_json`]) or [`error_line`]/[`warn`]: a reader that goes away (`hoist audit | head -1`)
//! ends the output quietly (the command finishes and exits as it would have, 0 when it
//! succeeded), and free text from the log (reasons, notes, commits, config values, hook output)
//! is shown as data, never as terminal control: see [`escape`].
//! JSON is written as serde_json writes it: that is the contract, and it escapes on its own.

use chrono::{DateTime, SecondsFormat, Utc};
use hoist_engine::{AppName, AppState, EnvName, ImageRef, Lock, ReleaseRecord, Rollout};
use hoist_projections::model::AppStatus;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize)]
pub struct SourceView<'a> {
    pub env: &'a EnvName,
    pub version: u64,
}

/// A release, as `releases`, `deploy`, `promote`, `rollback` and `config set/unset` print it.
#[derive(Debug, Serialize)]
pub struct ReleaseView<'a> {
    pub app: &'a AppName,
    pub env: &'a EnvName,
    pub version: u64,
    pub kind: &'static str,
    pub image: Option<&'a ImageRef>,
    pub build: Option<&'a str>,
    pub config: BTreeMap<&'a str, &'a str>,
    pub description: &'a str,
    pub actor: &'a str,
    pub at: String,
    pub source: Option<SourceView<'a>>,
    pub rollback_to: Option<u64>,
}

impl<'a> ReleaseView<'a> {
    pub fn new(app: &'a AppName, env: &'a EnvName, record: &'a ReleaseRecord) -> Self {
        let release = &record.release;
        ReleaseView {
            app,
            env,
            version: release.version.get(),
            kind: release.kind.as_str(),
            image: release.build.as_ref().map(|b| &b.image),
            build: release.build.as_ref().map(|b| b.id.as_str()),
            config: release
                .config
                .iter()
                .map(|(k, v)| (k.as_str(), v.display()))
                .collect(),
            description: &release.description,
            actor: record.actor.as_str(),
            at: timestamp(record.at),
            source: release.source.as_ref().map(|s| SourceView {
                env: &s.env,
                version: s.version.get(),
            }),
            rollback_to: release.rollback_to.map(|v| v.get()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EnvStatusView<'a> {
    pub version: Option<u64>,
    pub image: Option<&'a ImageRef>,
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_reason: Option<&'a str>,
    pub released_at: Option<String>,
    /// The version last applied to the env's target (whatever came of it); `None` before any.
    pub applied_version: Option<u64>,
    /// What came of it: `applied` (health not awaited), `healthy` or `failed`.
    pub health: Option<&'static str>,
}

/// `status`: the current release of every env, in pipeline order.
#[derive(Debug, Serialize)]
pub struct StatusView<'a> {
    pub app: &'a AppName,
    #[serde(serialize_with = "ordered_map")]
    pub envs: Vec<(&'a EnvName, EnvStatusView<'a>)>,
}

/// Serializes pairs as a JSON object in their given (pipeline) order.
fn ordered_map<S: serde::Serializer, K: Serialize, V: Serialize>(
    pairs: &[(K, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl<'a> StatusView<'a> {
    pub fn new(app: &'a AppName, state: &'a AppState) -> Self {
        Self::of(app, &state.pipeline, |env| {
            let env_state = &state.envs[env];
            (
                env_state.current(),
                env_state.lock.as_ref(),
                env_state.rollout.as_ref(),
            )
        })
    }

    /// From the status read model, which keeps exactly what this view shows.
    pub fn of_model(app: &'a AppName, status: &'a AppStatus) -> Self {
        Self::of(app, &status.pipeline, |env| {
            let env_status = &status.envs[env];
            (
                env_status.current(),
                env_status.lock.as_ref(),
                env_status.rollout.as_ref(),
            )
        })
    }

    fn of(
        app: &'a AppName,
        pipeline: &'a [EnvName],
        env_now: impl Fn(
            &EnvName,
        ) -> (
            Option<&'a ReleaseRecord>,
            Option<&'a Lock>,
            Option<&'a Rollout>,
        ),
    ) -> Self {
        let envs = pipeline
            .iter()
            .map(|env| {
                let (current, lock, rollout) = env_now(env);
                let view = EnvStatusView {
                    version: current.map(|r| r.release.version.get()),
                    image: current
                        .and_then(|r| r.release.build.as_ref())
                        .map(|b| &b.image),
                    locked: lock.is_some(),
                    locked_by: lock.map(|l| l.actor.as_str()),
                    lock_reason: lock.map(|l| l.reason.as_str()),
                    released_at: current.map(|r| timestamp(r.at)),
                    applied_version: rollout.map(|r| r.version.get()),
                    health: rollout.map(|r| r.outcome.as_str()),
                };
                (env, view)
            })
            .collect();
        StatusView { app, envs }
    }
}

pub fn short_image(image: Option<&ImageRef>) -> &str {
    image.map_or("-", ImageRef::short)
}

/// A cell longer than this many characters is cut in a human table (with a note saying how much
/// was left out): a row stays one line however long a reason or note is; `--json` has it all.
pub const CELL_MAX: usize = 4096;

/// Columns at most this wide keep their width on a narrow terminal; wider ones wrap.
const SHORT_COLUMN: u16 = 32;

/// A plain text table: a header row, then rows, columns separated by two spaces (no borders,
/// no trailing blanks). Cells are escaped ([`escape`]) and cut at [`CELL_MAX`] characters. On a
/// terminal the table fits its width, wrapping cells inside their column.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    render_table(header, rows, terminal_width())
}

/// [`table`] for a given width: `None` never wraps (each row is one line).
pub fn render_table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
    width: Option<u16>,
) -> String {
    use comfy_table::{ContentArrangement, ContentLineStyle, Table, TableStyle};
    let mut table = Table::new();
    // No borders; one blank of padding plus a blank junction: two spaces between columns.
    table.load_style(
        TableStyle::new()
            .header_lines(ContentLineStyle::none().junction(' '))
            .content_lines(ContentLineStyle::none().junction(' ')),
    );
    match width {
        Some(width) => {
            table
                .set_width(width)
                .set_content_arrangement(ContentArrangement::Dynamic);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(header.map(cell));
    for row in rows {
        table.add_row(row.map(|c| cell(&c)));
    }
    let widths = table.column_max_content_widths();
    for (column, width) in table.column_iter_mut().zip(widths) {
        column.set_padding((0, 1));
        // Short columns (versions, timestamps, names) never wrap: only long free text does.
        if width <= SHORT_COLUMN {
            column.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One table cell: escaped, and cut at [`CELL_MAX`] characters.
fn cell(text: &str) -> String {
    let text = escape(text);
    match text.char_indices().nth(CELL_MAX) {
        None => text.into_owned(),
        Some((cut, _)) => {
            let left_out = text[cut..].chars().count();
            format!("{}… ({left_out} more characters: see --json)", &text[..cut])
        }
    }
}

/// The terminal's width when stdout is one: tables fit it there, and never wrap in a pipe.
fn terminal_width() -> Option<u16> {
    let term = console::Term::stdout();
    term.is_term()
        .then(|| term.size_checked())
        .flatten()
        .map(|(_rows, columns)| columns)
}

/// Whether to colour what goes to a stream: only a terminal (never a pipe, a log file or a
/// journal), and never when `NO_COLOR` is set to anything non-empty (no-color.org). Every colour
/// hoist can emit asks here: `serve`'s log, and console's (indicatif's bar, comfy-table) through
/// [`respect_no_color`].
pub fn colour(is_terminal: bool) -> bool {
    colour_under(is_terminal, std::env::var_os("NO_COLOR").as_deref())
}

/// [`colour`], given the value of `NO_COLOR`.
fn colour_under(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Turns console's colours off (indicatif's bar and comfy-table style through it) when
/// `NO_COLOR` asks: the crates' own detection differs on an empty value. Called once by `main`.
pub fn respect_no_color() {
    if !colour(true) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

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
fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
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

/// `println!` for human output: through [`human`].
macro_rules! outln {
    () => {
        $crate::output::human("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::human(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for human output: through [`human`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::human(&format!($($arg)*))
    };
}
pub(crate) use {out, outln};

/// Human text to stdout. Its fields are escaped where they are formatted; here any control
/// character but the line ends hoist laid out is escaped too, so none reaches the terminal.
pub fn human(text: &str) {
    write_stdout(escape_keeping_lines(text).as_bytes());
}

/// One JSON document on stdout, exactly as serde_json writes it (the contract).
pub fn print_json<T: Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("views serialize");
    text.push('\n');
    write_stdout(text.as_bytes());
}

/// One JSON value on one line (`hoist events`, `events export`).
pub fn print_json_line<T: Serialize>(value: &T) {
    let mut line = serde_json::to_vec(value).expect("events serialize");
    line.push(b'\n');
    write_stdout(&line);
}

/// Why stdout takes no more output, once it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdoutClosed {
    /// The reader went away (`hoist audit | head -1`): the end of the output, not an error.
    ReaderGone,
    /// Writing failed otherwise (a full disk under `events export > backup.jsonl`): the
    /// command fails with this line.
    Failed(String),
}

static STDOUT_CLOSED: std::sync::OnceLock<StdoutClosed> = std::sync::OnceLock::new();

/// Every write to stdout. The first failure closes stdout for the rest of the run: later
/// output is dropped, loops that print (`events`, `events export`) stop at [`stdout_closed`],
/// and the command ends normally (its store closed as usual, its own error still reported);
/// `main` then exits 0 for a reader that went away, 1 naming any other write failure.
pub fn write_stdout(bytes: &[u8]) {
    if STDOUT_CLOSED.get().is_some() {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_all(bytes) {
        close_stdout(e);
    }
}

/// Flushes what is still buffered (std's own flush at exit would swallow its error).
pub fn flush_stdout() {
    if STDOUT_CLOSED.get().is_none() {
        if let Err(e) = std::io::stdout().flush() {
            close_stdout(e);
        }
    }
}

/// Why stdout was closed, if it was.
pub fn stdout_closed() -> Option<&'static StdoutClosed> {
    STDOUT_CLOSED.get()
}

fn close_stdout(e: std::io::Error) {
    let _ = STDOUT_CLOSED.set(match e.kind() {
        std::io::ErrorKind::BrokenPipe => StdoutClosed::ReaderGone,
        _ => StdoutClosed::Failed(format!("stdout: {e}")),
    });
}

/// `hoist: MESSAGE` on stderr: the one line of a failure, escaped so that data inside it (a
/// reason with a newline) cannot forge another line. A closed stderr is ignored: nothing is
/// left to tell.
pub fn error_line(message: &str) {
    stderr_line(&format!("hoist: {message}"));
}

/// One line on stderr (a failure, a warning, a progress line), escaped like [`error_line`].
pub fn stderr_line(text: &str) {
    let _ = std::io::stderr().lock().write_all(line_of(text).as_bytes());
}

/// `text` as exactly one line: escaped, with its one line end.
fn line_of(text: &str) -> String {
    format!("{}\n", escape(text))
}

/// `hoist: warning: MESSAGE` on stderr, like [`error_line`].
pub fn warn(message: &str) {
    error_line(&format!("warning: {message}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_color_set_to_anything_turns_colour_off_even_on_a_terminal() {
        use std::ffi::OsStr;
        // Given a terminal, colour unless NO_COLOR holds a value.
        assert!(colour_under(true, None));
        assert!(
            colour_under(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        for value in ["1", "0", "true", "no"] {
            assert!(
                !colour_under(true, Some(OsStr::new(value))),
                "NO_COLOR={value}"
            );
        }
        // Never in a pipe or a file, whatever NO_COLOR says.
        assert!(!colour_under(false, None));
        assert!(!colour_under(false, Some(OsStr::new("1"))));
    }

    /// serve's log under NO_COLOR, formatted as `serve` sets its subscriber up on a terminal:
    /// not one escape sequence; and coloured without NO_COLOR (so the check can fail).
    #[test]
    fn a_log_line_under_no_color_has_no_escape() {
        use std::sync::{Arc, Mutex};
        let log_line = |ansi: bool| {
            let written = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&written);
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || SharedBuffer(Arc::clone(&sink)))
                .with_ansi(ansi)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(env = "production", "rollout failed");
            });
            let bytes = written.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap()
        };
        let plain = log_line(colour_under(true, Some(std::ffi::OsStr::new("1"))));
        assert!(
            plain.contains("rollout failed") && !plain.contains('\u{1b}'),
            "{plain:?}"
        );
        let coloured = log_line(colour_under(true, None));
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
    }

    struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Any character, with the dangerous ones (C0, DEL, C1, separators, bidi) drawn often.
    fn hostile_char() -> impl Strategy<Value = char> {
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

    fn hostile_text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(hostile_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
    }

    /// Free text of any length, now and then past [`CELL_MAX`].
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![8 => hostile_text(40), 1 => hostile_text(CELL_MAX + 300)]
    }

    fn assert_no_control(text: &str) {
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
        // Cells past CELL_MAX make each case heavy: fewer cases, still every length class.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A table of any cells is one line per row (a header, then the rows), and none of its
        /// characters is a control character.
        #[test]
        fn tables_of_any_text_stay_one_line_per_row(
            rows in prop::collection::vec([field(), field(), field(), field()], 0..6),
        ) {
            let text = render_table(["ENV", "VERSION", "LOCKED", "NOTE"], rows.clone(), None);
            assert_no_control(&text);
            prop_assert_eq!(text.lines().count(), rows.len() + 1);
            prop_assert!(text.ends_with('\n'));
            for (line, row) in text.lines().skip(1).zip(&rows) {
                // Cells are cut, never dropped: a row's first cell starts its line.
                let first = escape(&row[0]);
                let shown: String = first.chars().take(CELL_MAX.min(20)).collect();
                prop_assert!(line.starts_with(shown.trim_end()), "{:?} / {:?}", line, shown);
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Fitted to a terminal, cells wrap, still without a control character.
        #[test]
        fn tables_fitted_to_a_terminal_hold_no_control(
            rows in prop::collection::vec([hostile_text(60), hostile_text(60)], 0..4),
            width in 10u16..200,
        ) {
            assert_no_control(&render_table(["A", "B"], rows, Some(width)));
        }

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

        /// A failure or warning is exactly one line on stderr, whatever its message holds.
        #[test]
        fn stderr_lines_are_one_line(message in hostile_text(200)) {
            let line = line_of(&format!("hoist: {message}"));
            prop_assert_eq!(line.matches('\n').count(), 1);
            prop_assert!(line.ends_with('\n'));
            assert_no_control(&line);
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
    fn tables_look_as_before() {
        let text = render_table(
            ["ENV", "VERSION", "LOCKED"],
            [
                ["staging".to_string(), "v12".to_string(), "no".to_string()],
                ["production".to_string(), "-".to_string(), String::new()],
            ],
            None,
        );
        assert_eq!(
            text,
            "ENV         VERSION  LOCKED\nstaging     v12      no\nproduction  -\n"
        );
    }

    #[test]
    fn a_cell_past_the_limit_is_cut_with_a_note() {
        let text = render_table(["NOTE"], [["x".repeat(70_000)]], None);
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.ends_with("… (65904 more characters: see --json)\n"),
            "{}",
            &text[..50]
        );
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
