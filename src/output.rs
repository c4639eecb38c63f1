//! What hoist prints: the `--json` shapes of CLI.md (a public contract) and the human tables, and
//! the one way anything reaches stdout or stderr.
//!
//! Every byte hoist prints goes through [`write_stdout`] (via [`outln!`], [`out!`],
//! [`print_json`]) or [`error_line`]/[`warn`]: a reader that goes away (`hoist audit | head -1`)
//! ends the command quietly with exit 0, and free text from the log (reasons, notes, commits,
//! config values, hook output) is shown as data, never as terminal control: see [`escape`].
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
    for column in table.column_iter_mut() {
        column.set_padding((0, 1));
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

/// Every write to stdout. A reader that went away (`hoist audit | head -1`) is the end of the
/// job, not an error: exit 0 at once, quietly. Any other failure (a full disk) is one line, exit 1.
pub fn write_stdout(bytes: &[u8]) {
    if let Err(e) = std::io::stdout().lock().write_all(bytes) {
        stdout_failed(e);
    }
}

/// Flushes what is still buffered; `main` calls it before exiting, so a closed pipe is handled
/// like any other write (std's own flush at exit would swallow the error).
pub fn flush_stdout() {
    if let Err(e) = std::io::stdout().flush() {
        stdout_failed(e);
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    error_line(&format!("stdout: {e}"));
    std::process::exit(1);
}

/// `hoist: MESSAGE` on stderr: the one line of a failure, escaped so that data inside it (a
/// reason with a newline) cannot forge another line. A closed stderr is ignored: nothing is
/// left to tell.
pub fn error_line(message: &str) {
    stderr_line(&format!("hoist: {message}"));
}

/// One line on stderr (a failure, a warning, a progress line), escaped like [`error_line`].
pub fn stderr_line(text: &str) {
    let line = format!("{}\n", escape(text));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `hoist: warning: MESSAGE` on stderr, like [`error_line`].
pub fn warn(message: &str) {
    error_line(&format!("warning: {message}"));
}
