//! Who calls: the bearer token of the `Authorization` header, traded for a [`Caller`] by
//! `hoist_control` (`authenticate(token, "api")`). A token anywhere else (the query string) is
//! refused before any route runs ([`refuse_tokens_in_url`]): URLs end up in logs and histories.
//! Tokens are never logged, nor echoed in an error.

use crate::error::ApiError;
use crate::Api;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use hoist_control::{Caller, ErrorKind};

/// What a front end names itself as to `authenticate`, and what audit entries carry as `via`.
pub const VIA: &str = "api";

/// The longest token looked at: anything longer is no token of hoist's.
const MAX_TOKEN: usize = 512;

/// Query parameters that would carry a credential.
const CREDENTIAL_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "bearer",
    "auth",
    "authorization",
    "api_key",
    "apikey",
];

/// Who a bearer token names: what the routes ask of every request that needs a token.
/// [`crate::router`] asks `Hoist::authenticate(token, "api")`; [`crate::router_with`] takes
/// another (a test's fixed tokens; later, a web session's).
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, hoist_control::Result<Caller>>;
}

/// The tokens hoist knows: identities and tokens folded from the log.
pub struct HoistTokens(pub hoist_control::Hoist);

impl Authenticator for HoistTokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, hoist_control::Result<Caller>> {
        Box::pin(self.0.authenticate(token, VIA))
    }
}

/// The caller of a route that needs a token.
pub struct Authenticated(pub Caller);

impl FromRequestParts<Api> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        match api.auth.authenticate(token).await {
            Ok(caller) => Ok(Authenticated(caller)),
            Err(e) if e.kind() == ErrorKind::Unauthenticated => {
                Err(ApiError::unauthenticated(e.message()))
            }
            Err(e) => Err(ApiError::of(&e)),
        }
    }
}

/// The token of `Authorization: Bearer <token>`, or why there is none (never quoting it).
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::unauthenticated(
            "no token: send Authorization: Bearer <token> (from `hoist access token create`)",
        ));
    };
    if values.next().is_some() {
        return Err(ApiError::unauthenticated(
            "more than one Authorization header: send one bearer token",
        ));
    }
    let malformed =
        || ApiError::unauthenticated("malformed Authorization header: must be `Bearer <token>`");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    let is_token_char = |c: char| c.is_ascii_graphic();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.len() > MAX_TOKEN
        || !token.chars().all(is_token_char)
    {
        return Err(malformed());
    }
    Ok(token)
}

/// Refuses a request whose query string carries a credential (`?token=…`), whatever the route:
/// tokens go in the `Authorization` header only.
pub async fn refuse_tokens_in_url(request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or("");
    let named = query.split('&').find_map(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        let name = percent_decoded_lowercase(name);
        CREDENTIAL_PARAMS.contains(&name.as_str()).then_some(name)
    });
    if let Some(name) = named {
        return ApiError::bad_request(format!(
            "query parameter {name:?} refused: send tokens only in the Authorization header, never in a URL"
        ))
        .into_response();
    }
    next.run(request).await
}

/// A query parameter's name as a server would read it (`%74oken` and `+` decoded, any case).
fn percent_decoded_lowercase(name: &str) -> String {
    crate::percent::decode(&name.replace('+', " "))
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn only_one_well_formed_bearer_header_yields_a_token() {
        assert_eq!(bearer(&headers(&["Bearer abc.DEF-123"])), Ok("abc.DEF-123"));
        assert_eq!(bearer(&headers(&["bearer abc"])), Ok("abc"));
        for bad in [
            &[][..],
            &["Basic YWxhZGRpbjpvcGVuc2VzYW1l"],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer a", "Bearer b"],
        ] {
            let e = bearer(&headers(bad)).unwrap_err();
            assert_eq!(e.code, "unauthenticated", "{bad:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN + 1));
        assert!(bearer(&headers(&[&long])).is_err());
    }

    #[test]
    fn a_refusal_never_quotes_the_token() {
        let e = bearer(&headers(&["Token s3cr3t-value"])).unwrap_err();
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
    }

    #[test]
    fn credential_names_are_read_as_a_server_decodes_them() {
        assert_eq!(percent_decoded_lowercase("%74oken"), "token");
        assert_eq!(percent_decoded_lowercase("Access_Token"), "access_token");
        assert_eq!(percent_decoded_lowercase("limit"), "limit");
    }
}
