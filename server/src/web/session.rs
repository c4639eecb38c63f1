//! Web sessions: a bearer token traded once, at sign-in, for a random session id in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS) and a CSRF token every form posts back.
//!
//! The token itself stays in this process's memory, never in a page or a cookie: every request
//! authenticates it again (`Authenticator`), so a revoked or expired token ends the session at
//! its next request. A session ends on its own after the server's session lifetime. Nothing is
//! persisted: a restarted server asks everyone to sign in again.
//!
//! Pure apart from the random numbers: times come in as arguments, so the rules are tested as
//! given/when/then without a clock.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hoist_session";
/// The sign-in form's own CSRF cookie (double-submit: there is no session yet to hold it).
pub const SIGNIN_COOKIE: &str = "hoist_signin";
/// How long a sign-in form stays good.
pub const SIGNIN_TTL: Duration = Duration::from_secs(600);
/// Sessions held at most: past it, signing in again drops the oldest.
const MAX_SESSIONS: usize = 10_000;

/// Random bytes behind a session id or a CSRF token (256 bits).
const RANDOM_BYTES: usize = 32;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The bearer token signed in with: authenticated again on every request.
    pub token: String,
    /// What every form of this session posts back.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// What a session cookie names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Active(Session),
    /// It was a session, and its time is up (forgotten now).
    Expired,
    /// No session of this server: never made, signed out, or from before a restart.
    Unknown,
}

/// The sessions of this server process.
pub struct Sessions {
    lifetime: Duration,
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Sessions {
        Sessions {
            lifetime,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// A new session for `token` (already authenticated), from `now`: its id (the cookie's
    /// value) and the session. Sessions past their time are forgotten on the way.
    pub fn open(
        &self,
        token: String,
        now: DateTime<Utc>,
    ) -> Result<(String, Session), getrandom::Error> {
        let id = random_token()?;
        let session = Session {
            token,
            csrf: random_token()?,
            expires_at: now + self.lifetime,
        };
        let mut sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.expires_at > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session `id` names at `now`. An expired one stays known as expired (every request
    /// of the page — its event stream's retries too — is told so) until a sign-in forgets it.
    pub fn find(&self, id: &str, now: DateTime<Utc>) -> Found {
        let sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(id) {
            Some(session) if session.expires_at > now => Found::Active(session.clone()),
            Some(_) => Found::Expired,
            None => Found::Unknown,
        }
    }

    /// Signs `id` out (nothing if it is no session).
    pub fn close(&self, id: &str) {
        let mut sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.remove(id);
    }
}

/// 256 random bits as 64 hex digits.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a posted CSRF token is the expected one, compared in constant time (an empty
/// expectation matches nothing).
pub fn csrf_matches(expected: &str, posted: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(posted.as_bytes()))
}

/// The value of cookie `name` in a `Cookie` header's value, if it is there once.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut values = header.split(';').filter_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value.trim())
    });
    let value = values.next()?;
    // Two cookies of one name (one planted by a sibling domain): trust neither.
    values.next().is_none().then_some(value)
}

/// A `Set-Cookie` value: the whole site, script cannot read it, never sent by another site's
/// request, and over HTTPS only when the server has TLS. `max_age` zero deletes it; none keeps
/// it until the browser closes (the session cookie: the server, which knows when a session
/// ends, says so to the person, where a browser dropping it would say nothing).
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> String {
    let max_age = max_age.map_or(String::new(), |age| format!("; Max-Age={}", age.as_secs()));
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{max_age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn given_a_session_when_found_within_its_lifetime_then_it_is_active() {
        let sessions = Sessions::new(HOUR);
        let (id, opened) = sessions.open("hoist_tok".into(), at(0)).unwrap();
        assert_eq!(sessions.find(&id, at(3599)), Found::Active(opened.clone()));
        assert_eq!(opened.token, "hoist_tok");
        assert_eq!(opened.expires_at, at(3600));
        assert_eq!((id.len(), opened.csrf.len()), (64, 64));
        assert_ne!(id, opened.csrf);
    }

    #[test]
    fn given_a_session_when_its_lifetime_is_up_then_it_is_expired_until_a_sign_in_forgets_it() {
        let sessions = Sessions::new(HOUR);
        let (id, _) = sessions.open("hoist_tok".into(), at(0)).unwrap();
        assert_eq!(sessions.find(&id, at(3600)), Found::Expired);
        assert_eq!(sessions.find(&id, at(3601)), Found::Expired);
        sessions.open("other".into(), at(3602)).unwrap();
        assert_eq!(sessions.find(&id, at(3602)), Found::Unknown);
    }

    #[test]
    fn given_a_session_when_signed_out_then_its_cookie_names_nothing() {
        let sessions = Sessions::new(HOUR);
        let (id, _) = sessions.open("hoist_tok".into(), at(0)).unwrap();
        sessions.close(&id);
        assert_eq!(sessions.find(&id, at(1)), Found::Unknown);
        assert_eq!(sessions.find("made-up", at(1)), Found::Unknown);
    }

    #[test]
    fn given_two_sign_ins_then_each_has_its_own_id_and_csrf_token() {
        let sessions = Sessions::new(HOUR);
        let (a, first) = sessions.open("t".into(), at(0)).unwrap();
        let (b, second) = sessions.open("t".into(), at(0)).unwrap();
        assert_ne!(a, b);
        assert_ne!(first.csrf, second.csrf);
    }

    #[test]
    fn given_expired_sessions_when_someone_signs_in_then_they_are_forgotten() {
        let sessions = Sessions::new(HOUR);
        let (old, _) = sessions.open("t".into(), at(0)).unwrap();
        sessions.open("t".into(), at(7200)).unwrap();
        let held = sessions.by_id.lock().unwrap();
        assert!(!held.contains_key(&old));
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn a_csrf_token_matches_only_itself() {
        assert!(csrf_matches("abc123", "abc123"));
        for wrong in ["", "abc12", "abc1234", "ABC123", "xyz123"] {
            assert!(!csrf_matches("abc123", wrong), "{wrong:?}");
        }
        assert!(!csrf_matches("", ""), "no expectation matches nothing");
    }

    #[test]
    fn a_cookie_is_read_only_when_named_once() {
        let header = "theme=dark; hoist_session=abc; other=1";
        assert_eq!(cookie(header, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie("hoist_sessionx=abc", SESSION_COOKIE), None);
        assert_eq!(
            cookie("hoist_session=a; hoist_session=b", SESSION_COOKIE),
            None
        );
        assert_eq!(cookie("", SESSION_COOKIE), None);
    }

    #[test]
    fn a_session_cookie_is_http_only_strict_and_secure_under_tls() {
        assert_eq!(
            set_cookie(SESSION_COOKIE, "abc", None, false),
            "hoist_session=abc; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            set_cookie(SIGNIN_COOKIE, "", Some(Duration::ZERO), true),
            "hoist_signin=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );
        assert!(set_cookie(SESSION_COOKIE, "abc", Some(HOUR), true).ends_with("; Secure"));
    }
}
