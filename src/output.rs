//! What hoist prints: the human tables, and the one way anything reaches stdout or stderr (the
//! `--json` shapes of CLI.md are `hoist_control::views`).
//!
//! Every byte hoist prints goes through [`write_stdout`] (via [`out!`],
//! [`print_json`]) or [`error_line`]/[`warn`]: a reader that goes away (`hoist audit | head -1`)
//! ends the output quietly (the command finishes and exits as it would have, 0 when it
//! succeeded), and free text from the log (reasons, notes, commits, config values, hook output)
//! is shown as data, never as terminal control: see `hoist_control::text`.
//! JSON is written as serde_json writes it: that is the contract, and it escapes on its own.

pub use hoist_control::text::escape;
use hoist_control::text::escape_keeping_lines;
use serde::Serialize;
use std::io::{IsTerminal, Write as _};

/// Progress of long work on stderr: a bar on a terminal, else plain lines (`rebuild: folded log
/// entries up to 2048 of 10000`). The bar is cleared when dropped.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    unit: &'static str,
}

impl Progress {
    pub fn new(what: &'static str, unit: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let template =
                format!("{what} {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
            let style =
                indicatif::ProgressStyle::with_template(&template).expect("a valid template");
            indicatif::ProgressBar::new(0).with_style(style)
        });
        Progress { bar, what, unit }
    }

    pub fn set(&mut self, at: u64, end: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(end);
                bar.set_position(at);
            }
            None => stderr_line(&format!(
                "{}: folded {} up to {at} of {end}",
                self.what, self.unit
            )),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The terminal's width when stdout is one: tables fit it there, and never wrap in a pipe.
pub fn width() -> Option<u16> {
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

/// `print!` for human output: through [`human`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::human(&format!($($arg)*))
    };
}
pub(crate) use out;

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
    use hoist_control::text::is_unsafe;
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// A failure or warning is exactly one line on stderr, whatever its message holds.
        #[test]
        fn stderr_lines_are_one_line(message in prop::collection::vec(
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['\n', '\r', '\u{1b}', '\u{85}', '\u{2028}', '\u{202e}']),
            ],
            0..200,
        )) {
            let message: String = message.into_iter().collect();
            let line = line_of(&format!("hoist: {message}"));
            prop_assert_eq!(line.matches('\n').count(), 1);
            prop_assert!(line.ends_with('\n'));
            prop_assert!(!line.trim_end_matches('\n').chars().any(is_unsafe), "{:?}", line);
        }
    }
}
