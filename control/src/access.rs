//! Identities, tokens, grants and chat links (CLI.md, "Identities, tokens and roles"):
//! [`Hoist::authenticate`] turns a bearer token into a [`Caller`], the `access_*` methods run the
//! access commands and answer the access questions, each authorized for its principal first.
//!
//! A token is `hoist_` followed by 43 base64url characters (32 bytes from the OS's random number
//! generator, unpadded): the prefix lets secret scanners and people tell it from other
//! credentials. Only its SHA-256 reaches the log; the token is shown once, when it is created.
//!
//! Authenticating keeps the folded access chain in the `Hoist` and, on every call, reads only
//! what the log holds past it: nothing at all when the log's last sequence has not moved. So a
//! server answers a request without a replay, and a revocation appended by any process sharing
//! the log takes effect on the next request.

use crate::error::{Error, ErrorKind, Result};
use crate::store::OpenMode;
use crate::{Caller, Hoist};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hoist_engine::access::{ChatLink, GrantRecord, Token, Verdict};
use hoist_engine::names::check_via;
use hoist_engine::service::{self, CommandContext, ExecutedAccess};
use hoist_engine::store::EventStore;
use hoist_engine::{
    AccessCommand, AccessState, Action, Actor, AppName, ChatId, Grant, Principal, Scope, TokenHash,
    TokenId,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use subtle::ConstantTimeEq;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "hoist_";
/// Random bytes in a token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Random bytes in a token's id: 48 bits, 12 hex digits (a clash is refused, not overwritten).
const TOKEN_ID_BYTES: usize = 6;

/// The access chain as last folded by this `Hoist`, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct AccessCache {
    state: AccessState,
    /// The log's last sequence when `state` was last brought up to date: while the log stays
    /// there, nothing needs reading.
    log_seq: u64,
}

pub(crate) type SharedAccess = Arc<Mutex<AccessCache>>;

/// A token just created: the only time its text exists outside its holder's hands.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: TokenId,
    pub identity: Actor,
    pub name: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The bearer token itself. Never logged, never stored.
    pub token: String,
}

/// A grant just given, or one already held (`changed: false`).
#[derive(Debug, Clone)]
pub struct Granted {
    pub record: GrantRecord,
    pub changed: bool,
}

/// A grant just taken back: who took it and when.
#[derive(Debug, Clone)]
pub struct RevokedGrant {
    pub identity: Actor,
    pub grant: Grant,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// A chat user's link, made (or already there: `changed: false`), or taken away (`link: None`).
#[derive(Debug, Clone)]
pub struct Linked {
    pub chat_id: ChatId,
    /// The identity the chat user acts as now; `None` once unlinked.
    pub link: Option<ChatLink>,
    /// Whom the chat user acted as before (for an unlink).
    pub was: Option<Actor>,
    pub changed: bool,
}

fn unauthenticated(message: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unauthenticated, message)
}

/// The token's hash, or `None` when `token` is not shaped like a hoist token.
pub fn token_hash(token: &str) -> Option<TokenHash> {
    let encoded = token.strip_prefix(TOKEN_PREFIX)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    (bytes.len() == TOKEN_BYTES).then(|| TokenHash::of(token))
}

/// `bytes` random bytes from the OS.
pub(crate) fn random(bytes: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::unavailable(format!("the OS random number generator failed: {e}")))?;
    Ok(buf)
}

impl Hoist {
    /// The identity a bearer token stands for, with its grants, acting through `via`; an
    /// unknown, malformed, revoked or expired token is `Unauthenticated`.
    pub async fn authenticate(&self, token: &str, via: &str) -> Result<Caller> {
        check_via(via)?;
        // The token itself is never echoed: messages name its id at most.
        let hash = token_hash(token).ok_or_else(|| {
            unauthenticated(format!(
                "malformed token: a hoist token is {TOKEN_PREFIX} followed by 43 base64url characters"
            ))
        })?;
        let now = Utc::now();
        self.with_access(|access| {
            // The index finds the token by its hash; the stored hash is then compared in
            // constant time, so how long the answer takes says nothing of how close a guess was.
            let token = access
                .token_by_hash(&hash)
                .filter(|token| bool::from(token.hash.0.ct_eq(&hash.0)))
                .ok_or_else(|| unauthenticated("token not recognized"))?;
            if let Some(revoked) = &token.revoked {
                return Err(unauthenticated(format!(
                    "token {} was revoked at {}",
                    token.id,
                    crate::views::timestamp(revoked.at)
                )));
            }
            if token.expired(now) {
                let at = token.expires_at.map(crate::views::timestamp);
                return Err(unauthenticated(format!(
                    "token {} expired at {}",
                    token.id,
                    at.unwrap_or_default()
                )));
            }
            Ok(Caller {
                principal: access.principal(&token.identity),
                actor: token.identity.clone(),
                via: Some(via.to_owned()),
                command_id: None,
            })
        })
        .await?
    }

    /// The identity a chat user is linked to, with its grants, acting through the chat user's
    /// id (`slack:TEAM/USER`, `matrix:@user:server`); an unlinked one is `Unauthenticated`.
    pub async fn authenticate_chat(&self, chat_id: &ChatId) -> Result<Caller> {
        self.with_access(|access| {
            let link = access.links.get(chat_id).ok_or_else(|| {
                unauthenticated(format!(
                    "chat user {chat_id} is not linked to an identity (`hoist access link`)"
                ))
            })?;
            Ok(Caller {
                principal: access.principal(&link.identity),
                actor: link.identity.clone(),
                via: Some(chat_id.to_string()),
                command_id: None,
            })
        })
        .await?
    }

    /// Runs `answer` on the access chain brought up to the log's end. Reads nothing when the
    /// log has not moved since the last call; else only the chain's commits after the fold.
    pub(crate) async fn with_access<T>(&self, answer: impl FnOnce(&AccessState) -> T) -> Result<T> {
        // The log has not moved since the fold (and nobody holds it): nothing to read.
        if let Some(head) = self.settled_head() {
            let cache = locked(&self.access);
            if cache.log_seq == head && head > 0 {
                return Ok(answer(&cache.state));
            }
        }
        let log = self.open_log(OpenMode::Existing).await?;
        let log_seq = log.last_seq().await?;
        let (known, folded_to) = {
            let cache = locked(&self.access);
            (cache.log_seq, cache.state.last_seq)
        };
        if log_seq != known {
            // A shorter log than the one folded is another log (a store replaced): fold afresh.
            let replaced = log_seq < known;
            let after = if replaced { 0 } else { folded_to };
            let commits = log.read_app_after(&AppName::access(), after).await?;
            let events = service::decode_commits(&commits)?;
            let mut cache = locked(&self.access);
            if replaced {
                cache.state = AccessState::default();
            }
            // Another call may have folded some of these commits meanwhile.
            let folded = cache.state.last_seq;
            for recorded in events.into_iter().filter(|r| r.seq > folded) {
                cache.state.apply_owned(recorded);
            }
            cache.log_seq = cache.log_seq.max(log_seq);
            if replaced {
                cache.log_seq = log_seq;
            }
        }
        let cache = locked(&self.access);
        self.warn_unknown(cache.state.skipped_unknown);
        Ok(answer(&cache.state))
    }

    /// Runs an access command as `caller`: authorized, decided on the access chain, appended,
    /// then folded into the read models (for `audit`).
    pub async fn access_execute(
        &self,
        caller: &Caller,
        command: AccessCommand,
    ) -> Result<ExecutedAccess> {
        let mut context = CommandContext::new(caller.actor.clone());
        context.principal = caller.principal.clone();
        context.via = caller.via.clone();
        if let Some(id) = caller.command_id {
            context.command_id = id;
        }
        let log = self.open_log(OpenMode::Create).await?;
        let executed = service::execute_access(&log, &command, &context).await?;
        self.warn_unknown(executed.state.skipped_unknown);
        if !executed.events.is_empty() {
            self.fold_new_events(&log).await;
        }
        Ok(executed)
    }

    /// `access token create`: a new token for `identity`, returned once. Needs admin on every
    /// app.
    pub async fn access_token_create(
        &self,
        caller: &Caller,
        identity: &Actor,
        name: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewToken> {
        let id: TokenId = hex(&random(TOKEN_ID_BYTES)?).parse()?;
        let token = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random(TOKEN_BYTES)?)
        );
        let command = AccessCommand::CreateToken {
            id: id.clone(),
            identity: identity.clone(),
            name: name.clone(),
            hash: TokenHash::of(&token),
            expires_at,
        };
        self.access_execute(caller, command).await?;
        Ok(NewToken {
            id,
            identity: identity.clone(),
            name,
            expires_at,
            token,
        })
    }

    /// `access token revoke`: the token opens nothing from now on, on every process sharing
    /// the log. Needs admin on every app.
    pub async fn access_token_revoke(&self, caller: &Caller, id: &TokenId) -> Result<Token> {
        let command = AccessCommand::RevokeToken { id: id.clone() };
        let executed = self.access_execute(caller, command).await?;
        Ok(executed.state.tokens[id].clone())
    }

    /// `access token list`: every token (of `identity`), revoked ones too, by id. Needs admin
    /// on every app, as creating and revoking them does.
    pub async fn access_token_list(
        &self,
        principal: &Principal,
        identity: Option<&Actor>,
    ) -> Result<Vec<Token>> {
        self.allowed(principal, Action::Admin, &Scope::everything())?;
        self.with_access(|access| {
            access
                .tokens
                .values()
                .filter(|t| identity.is_none_or(|i| *i == t.identity))
                .cloned()
                .collect()
        })
        .await
    }

    /// `access grant`: `identity` gets `grant`. Needs admin on its scope.
    pub async fn access_grant(
        &self,
        caller: &Caller,
        identity: &Actor,
        grant: Grant,
    ) -> Result<Granted> {
        let command = AccessCommand::Grant {
            identity: identity.clone(),
            grant: grant.clone(),
        };
        let executed = self.access_execute(caller, command).await?;
        let record = executed.state.grants[&(identity.clone(), grant)].clone();
        Ok(Granted {
            record,
            changed: !executed.events.is_empty(),
        })
    }

    /// `access revoke`: takes back exactly `grant` from `identity`. Needs admin on its scope.
    pub async fn access_revoke(
        &self,
        caller: &Caller,
        identity: &Actor,
        grant: Grant,
    ) -> Result<RevokedGrant> {
        let command = AccessCommand::Revoke {
            identity: identity.clone(),
            grant: grant.clone(),
        };
        let executed = self.access_execute(caller, command).await?;
        let recorded = executed.events.first().ok_or_else(|| {
            Error::rejected("the revocation was not recorded: nothing was appended")
        })?;
        Ok(RevokedGrant {
            identity: identity.clone(),
            grant,
            by: recorded.envelope.actor.clone(),
            at: recorded.envelope.at,
        })
    }

    /// `access list`: the grants in force, of `identity`, that apply to `app` (those on it and
    /// those on every app). Needs view on what it lists.
    pub async fn access_list(
        &self,
        principal: &Principal,
        identity: Option<&Actor>,
        app: Option<&AppName>,
    ) -> Result<Vec<GrantRecord>> {
        let scope = match app {
            Some(app) => Scope::app(app),
            None => Scope::everything(),
        };
        self.allowed(principal, Action::View, &scope)?;
        self.with_access(|access| {
            access
                .grants
                .values()
                .filter(|r| identity.is_none_or(|i| *i == r.identity))
                .filter(|r| app.is_none_or(|app| r.grant.app.as_ref().is_none_or(|a| a == app)))
                .cloned()
                .collect()
        })
        .await
    }

    /// `access link`: the chat user acts as `identity`. A link lends the whole identity, so it
    /// needs admin on every app.
    pub async fn access_link(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        identity: &Actor,
    ) -> Result<Linked> {
        let command = AccessCommand::Link {
            chat_id: chat_id.clone(),
            identity: identity.clone(),
        };
        let executed = self.access_execute(caller, command).await?;
        Ok(Linked {
            chat_id: chat_id.clone(),
            link: executed.state.links.get(chat_id).cloned(),
            was: None,
            changed: !executed.events.is_empty(),
        })
    }

    /// `access unlink`: the chat user acts as nobody. Needs admin on every app.
    pub async fn access_unlink(&self, caller: &Caller, chat_id: &ChatId) -> Result<Linked> {
        let was = self
            .with_access(|access| access.links.get(chat_id).map(|l| l.identity.clone()))
            .await?;
        let command = AccessCommand::Unlink {
            chat_id: chat_id.clone(),
        };
        self.access_execute(caller, command).await?;
        Ok(Linked {
            chat_id: chat_id.clone(),
            link: None,
            was,
            changed: true,
        })
    }

    /// `access check`: whether `identity` may take `action` on `scope`, and why. Needs view on
    /// the scope asked about.
    pub async fn access_check(
        &self,
        principal: &Principal,
        identity: &Actor,
        action: Action,
        scope: &Scope,
    ) -> Result<Verdict> {
        self.allowed(principal, Action::View, scope)?;
        self.with_access(|access| access.check(identity, action, scope))
            .await
    }
}

/// The cache, even after a panic elsewhere while it was held: a fold applies each event whole
/// (`apply_owned` cannot fail), so what it holds is a prefix of the chain either way.
fn locked(cache: &SharedAccess) -> MutexGuard<'_, AccessCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Config};

    fn hoist(dir: &std::path::Path) -> Hoist {
        Hoist::open(Config {
            backend: Backend::Embedded {
                dir: Some(dir.join("store")),
            },
            cache: None,
            secret_key_file: Some(dir.join("secret.key")),
        })
        .unwrap()
    }

    fn owner() -> Caller {
        Caller::owner("root@example.com".parse().unwrap())
    }

    fn ana() -> Actor {
        "ana@example.com".parse().unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn tokens_are_hoist_and_43_base64url_characters_of_32_random_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let hoist = hoist(dir.path());
        rt().block_on(async {
            let a = hoist
                .access_token_create(&owner(), &ana(), None, None)
                .await
                .unwrap();
            let b = hoist
                .access_token_create(&owner(), &ana(), None, None)
                .await
                .unwrap();
            for new in [&a, &b] {
                assert!(new.token.starts_with(TOKEN_PREFIX));
                assert_eq!(new.token.len(), TOKEN_PREFIX.len() + 43);
                assert!(token_hash(&new.token).is_some());
            }
            assert_ne!(a.token, b.token);
            assert_ne!(a.id, b.id);
        });
    }

    #[test]
    fn a_valid_token_is_its_identity_with_its_grants_acting_through_via() {
        let dir = tempfile::tempdir().unwrap();
        let hoist = hoist(dir.path());
        rt().block_on(async {
            hoist
                .execute(
                    &owner(),
                    &"api".parse().unwrap(),
                    hoist_engine::Command::CreateApp {
                        pipeline: vec!["staging".parse().unwrap()],
                    },
                )
                .await
                .unwrap();
            let grant = Grant {
                role: hoist_engine::Role::Deployer,
                app: Some("api".parse().unwrap()),
                env: None,
            };
            hoist
                .access_grant(&owner(), &ana(), grant.clone())
                .await
                .unwrap();
            let new = hoist
                .access_token_create(&owner(), &ana(), Some("laptop".into()), None)
                .await
                .unwrap();
            let caller = hoist.authenticate(&new.token, "api").await.unwrap();
            assert_eq!(caller.actor, ana());
            assert_eq!(caller.via.as_deref(), Some("api"));
            assert_eq!(
                caller.principal,
                Principal::Identity {
                    name: ana(),
                    grants: vec![grant],
                }
            );
        });
    }

    #[test]
    fn unknown_malformed_revoked_and_expired_tokens_are_unauthenticated() {
        let dir = tempfile::tempdir().unwrap();
        let hoist = hoist(dir.path());
        rt().block_on(async {
            let live = hoist
                .access_token_create(&owner(), &ana(), None, None)
                .await
                .unwrap();
            let refused = |token: String, needle: &'static str| {
                let hoist = hoist.clone();
                async move {
                    let e = hoist.authenticate(&token, "api").await.unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
                    assert!(e.message().contains(needle), "{e}");
                    assert!(
                        token.is_empty() || !e.message().contains(&token),
                        "never echoes the token: {e}"
                    );
                }
            };
            // Unknown: well formed, never created.
            let unknown = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
            refused(unknown, "not recognized").await;
            // Malformed: no prefix, a short body, padding, a character outside base64url, a
            // body of another length.
            for malformed in [
                live.token.trim_start_matches(TOKEN_PREFIX).to_string(),
                live.token[..live.token.len() - 1].to_string(),
                format!("{}=", live.token),
                format!("{}+", &live.token[..live.token.len() - 1]),
                format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode([7u8; 31])),
                String::new(),
            ] {
                refused(malformed, "malformed token").await;
            }
            // Revoked: refused at once by this process, whose cache held it as valid.
            assert!(hoist.authenticate(&live.token, "api").await.is_ok());
            hoist.access_token_revoke(&owner(), &live.id).await.unwrap();
            refused(live.token.clone(), "was revoked").await;
            // And by another process sharing the log (a second `Hoist` with a cache of its own).
            let other = self::hoist(dir.path());
            let e = other.authenticate(&live.token, "api").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthenticated);
            // Expired: its expiry is past.
            let past = Utc::now() - chrono::Duration::seconds(1);
            let expired = hoist
                .access_token_create(&owner(), &ana(), None, Some(past))
                .await
                .unwrap();
            refused(expired.token, "expired").await;
        });
    }

    #[test]
    fn a_revocation_by_another_process_takes_effect_on_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let (server, cli) = (hoist(dir.path()), hoist(dir.path()));
        rt().block_on(async {
            let new = cli
                .access_token_create(&owner(), &ana(), None, None)
                .await
                .unwrap();
            assert!(server.authenticate(&new.token, "api").await.is_ok());
            cli.access_token_revoke(&owner(), &new.id).await.unwrap();
            let e = server.authenticate(&new.token, "api").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        });
    }

    #[test]
    fn an_exported_and_imported_store_keeps_its_tokens_working() {
        let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (hoist(from_dir.path()), hoist(to_dir.path()));
        rt().block_on(async {
            let live = from
                .access_token_create(&owner(), &ana(), None, None)
                .await
                .unwrap();
            let revoked = from
                .access_token_create(&owner(), &ana(), None, None)
                .await
                .unwrap();
            from.access_token_revoke(&owner(), &revoked.id)
                .await
                .unwrap();
            let mut lines = Vec::new();
            from.export(&Principal::Owner, &mut |line| {
                lines.push(serde_json::to_string(line).unwrap());
                std::ops::ControlFlow::Continue(())
            })
            .await
            .unwrap();
            assert!(lines.iter().all(|l| !l.contains(&live.token)));
            let numbered = lines.into_iter().enumerate().map(|(i, l)| (i + 1, Ok(l)));
            let imported = to.import(&Principal::Owner, numbered).await.unwrap();
            assert_eq!((imported.apps, imported.events), (0, 3));
            assert_eq!(
                to.authenticate(&live.token, "api").await.unwrap().actor,
                ana()
            );
            let e = to.authenticate(&revoked.token, "api").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        });
    }

    #[test]
    fn the_stored_hash_is_compared_in_constant_time() {
        // `authenticate` compares with `subtle`'s `ct_eq`: equal hashes are equal, a hash one
        // bit away is not (the comparison is the one `authenticate` makes).
        let hash = TokenHash::of("hoist_x");
        let mut near = hash.0;
        near[31] ^= 1;
        assert!(bool::from(hash.0.ct_eq(&hash.0)));
        assert!(!bool::from(hash.0.ct_eq(&near)));
    }

    #[test]
    fn only_an_admin_of_every_app_creates_tokens_and_via_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let hoist = hoist(dir.path());
        rt().block_on(async {
            let admin: Actor = "bo@example.com".parse().unwrap();
            let everything = Grant {
                role: hoist_engine::Role::Admin,
                app: None,
                env: None,
            };
            hoist
                .access_grant(&owner(), &admin, everything)
                .await
                .unwrap();
            let token = hoist
                .access_token_create(&owner(), &admin, None, None)
                .await
                .unwrap();
            let as_admin = hoist.authenticate(&token.token, "api").await.unwrap();
            let created = hoist
                .access_token_create(&as_admin, &ana(), None, None)
                .await
                .unwrap();
            let as_ana = hoist.authenticate(&created.token, "web").await.unwrap();
            let denied = hoist
                .access_token_create(&as_ana, &ana(), None, None)
                .await
                .unwrap_err();
            assert_eq!(denied.kind(), ErrorKind::Denied, "{denied}");
            let log = hoist.open_log(OpenMode::Existing).await.unwrap();
            let access = service::load_events(&log, &AppName::access())
                .await
                .unwrap();
            let vias: Vec<Option<&str>> =
                access.iter().map(|r| r.envelope.via.as_deref()).collect();
            assert_eq!(vias, [None, None, Some("api")]);
            assert_eq!(access[2].envelope.actor, admin);
        });
    }
}
