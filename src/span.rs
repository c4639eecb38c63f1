//! Spans of time as people type them (`500ms`, `90s`, `5m`, `12h`, `7d`, `2w`), parsed by jiff's
//! friendly duration format rather than by hand: `--timeout`, `--resync`, `--poll` and the
//! "span ago" of `--since`, `--until` and `--at`. jiff also reads `1h30m`, `1.5h`, `2 hours` and
//! ISO 8601 (`PT5M`); a day is 24 hours and a week 7 days (no calendar: a span is an amount of
//! time, not a date). Negative spans, and months or years (whose length depends on a date), are
//! refused: the callers turn `None` into their one-line error naming the flag.

use std::time::Duration;

/// A span of at least zero, or `None` when `text` is not one.
pub fn parse(text: &str) -> Option<Duration> {
    let span: jiff::Span = text.parse().ok()?;
    if span.is_negative() {
        return None;
    }
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    Duration::try_from(signed).ok()
}

#[cfg(test)]
mod tests {
    use super::parse;
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
