//! Times and spans of time as people type them: RFC 3339 instants, and spans (`500ms`, `90s`, `5m`, `12h`, `7d`, `2w`), parsed by jiff's
//! friendly duration format rather than by hand: `--timeout`, `--resync`, `--poll` and the
//! "span ago" of `--since`, `--until` and `--at`. jiff also reads `1h30m`, `1.5h`, `2 hours` and
//! ISO 8601 (`PT5M`); a day is 24 hours and a week 7 days (no calendar: a span is an amount of
//! time, not a date). Negative spans, and months or years (whose length depends on a date), are
//! refused: the callers turn `None` into their one-line error naming the flag.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A span of at least zero, or `None` when `text` is not one.
pub fn parse_span_text(text: &str) -> Option<Duration> {
    let span: jiff::Span = text.parse().ok()?;
    if span.is_negative() {
        return None;
    }
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    Duration::try_from(signed).ok()
}

/// A span of more than zero, like `500ms`, `90s`, `5m`, `1h`, given as `what` (a flag, or a key
/// of a settings file).
pub fn parse_span(what: &str, text: &str) -> Result<Duration> {
    parse_span_text(text)
        .filter(|span| !span.is_zero())
        .ok_or_else(|| {
            Error::rejected(format!(
                "invalid {what} {text:?}: must be a span like 500ms, 90s, 5m, 1h"
            ))
        })
}

/// `T` of `--since`, `--until`, `--at`: RFC 3339, or a span ago (`90s`, `30m`, `12h`, `7d`, `2w`).
pub fn parse_instant(what: &str, text: &str) -> Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let invalid = || {
        Error::rejected(format!("invalid {what} {text:?}: must be RFC 3339 (2026-11-23T20:00:00Z) or a span ago like 7d, 12h, 30m"))
    };
    let span = parse_span_text(text)
        .and_then(|span| chrono::Duration::from_std(span).ok())
        .ok_or_else(invalid)?;
    Utc::now().checked_sub_signed(span).ok_or_else(invalid)
}

/// An instant given as RFC 3339 only (an API body's `expires_at`: a machine writes it, so no
/// span is guessed at); `what` names the field in the error.
pub fn parse_rfc3339(what: &str, text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            Error::rejected(format!(
                "invalid {what} {text:?}: must be RFC 3339 (2026-11-23T20:00:00Z)"
            ))
        })
}

/// The instant a span from now ends (`--expires 90d`): `what` names the flag in the error.
pub fn parse_from_now(what: &str, text: &str) -> Result<DateTime<Utc>> {
    let span = parse_span(what, text)?;
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| Utc::now().checked_add_signed(span))
        .ok_or_else(|| Error::rejected(format!("invalid {what} {text:?}: too far in the future")))
}

#[cfg(test)]
mod tests {
    use super::parse_span_text as parse;
    use std::time::Duration;

    #[test]
    fn every_form_hoist_documents_is_a_span() {
        for (text, seconds) in [
            ("90s", 90),
            ("5m", 300),
            ("1h", 3600),
            ("12h", 43_200),
            ("7d", 7 * 86_400),
            ("2w", 14 * 86_400),
            ("0d", 0),
            ("+5m", 300),
        ] {
            assert_eq!(parse(text), Some(Duration::from_secs(seconds)), "{text}");
        }
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("2 hours"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("PT5M"), Some(Duration::from_secs(300)));
    }

    #[test]
    fn what_is_no_amount_of_time_is_refused() {
        for text in [
            "",
            "5",
            "m",
            "-5m",
            "5m ago",
            "1mo",
            "1y",
            "soon",
            "5 parsecs",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
