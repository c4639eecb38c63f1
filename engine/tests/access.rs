//! The access chain: given/when/then tests of `access::decide` and `access::authorize_command`
//! (who may create tokens, grant, revoke and link; what a grant may name), and property tests of
//! its fold: random command sequences by random principals, decided one by one, give a history
//! whose replay in any chunking is the state maintained incrementally; every event decided passes
//! `access::check_event`; no accepted grant gives more than its granter holds.

use chrono::{DateTime, TimeZone, Utc};
use hoist_engine::access::{
    self, authorize_command, check_event, AccessCommand, AccessState, Pipelines, TokenHash,
};
use hoist_engine::codec::{decode_commit, encode_envelope};
use hoist_engine::validate;
use hoist_engine::{
    authorize, Action, Actor, AppName, AppState, ChatId, Denied, DomainError, EnvName, Envelope,
    Event, Grant, Principal, Recorded, Role, Scope, TokenId,
};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use uuid::Uuid;

fn at(seq: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + seq as i64, 0).unwrap()
}

fn actor(name: &str) -> Actor {
    name.parse().unwrap()
}

fn app(name: &str) -> AppName {
    name.parse().unwrap()
}

fn env(name: &str) -> EnvName {
    name.parse().unwrap()
}

fn grant(role: Role, app_name: Option<&str>, env_name: Option<&str>) -> Grant {
    Grant {
        role,
        app: app_name.map(app),
        env: env_name.map(env),
    }
}

fn token_id(n: u8) -> TokenId {
    format!("{n:012x}").parse().unwrap()
}

fn chat(id: &str) -> ChatId {
    id.parse().unwrap()
}

/// The apps that exist: api (staging → production) and web (dev → production).
fn apps() -> Pipelines {
    Pipelines::from([
        (app("api"), vec![env("staging"), env("production")]),
        (app("web"), vec![env("dev"), env("production")]),
    ])
}

fn identity(name: &str, grants: Vec<Grant>) -> Principal {
    Principal::Identity {
        name: actor(name),
        grants,
    }
}

fn create_token(n: u8, who: &str) -> AccessCommand {
    AccessCommand::CreateToken {
        id: token_id(n),
        identity: actor(who),
        name: None,
        hash: TokenHash::of(&format!("hoist_token{n}")),
        expires_at: None,
    }
}

/// `event` as the log gives it back: encoded on the access chain, committed at `seq`, decoded.
fn record(seq: u64, by: &Actor, state: &AccessState, event: Option<Event>) -> Recorded {
    let envelope = Envelope {
        id: Uuid::from_u128(u128::from(seq)),
        app: AppName::access(),
        at: at(seq),
        actor: by.clone(),
        via: seq.is_multiple_of(2).then(|| "api".to_string()),
        correlation_id: Uuid::from_u128(u128::from(seq) << 64),
        causation_id: None,
        prev_hash: state.last_hash,
        event,
    };
    let bytes = encode_envelope(&envelope);
    let mut recorded = decode_commit(seq, &hoist_proto::join_commit(&[bytes])).unwrap();
    recorded.remove(0)
}

// ---- the harness -------------------------------------------------------------------------------

/// An access chain whose history is `events`, each recorded by the store's owner `root`.
fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let root = actor("root@example.com");
    let mut state = AccessState::default();
    for (i, event) in events.into_iter().enumerate() {
        let recorded = record(i as u64 + 1, &root, &state, Some(event));
        state = state.apply(&recorded);
    }
    Given { state }
}

struct Given {
    state: AccessState,
}

#[derive(Debug)]
enum Refused {
    Denied(Denied),
    Rejected(DomainError),
}

impl Given {
    /// `principal` gives `command`: authorized, then decided (as `service::execute_access`).
    fn when(self, principal: &Principal, command: AccessCommand) -> When {
        let result = authorize_command(principal, &command)
            .map_err(Refused::Denied)
            .and_then(|()| {
                access::decide(&self.state, &apps(), &command).map_err(Refused::Rejected)
            });
        When {
            state: self.state,
            result,
        }
    }
}

struct When {
    state: AccessState,
    result: Result<Vec<Event>, Refused>,
}

impl When {
    /// Asserts exactly `expected`; returns the chain after them.
    fn then_expect(self, expected: Vec<Event>) -> AccessState {
        let events = self
            .result
            .unwrap_or_else(|e| panic!("expected events, the command was refused: {e:?}"));
        assert_eq!(events, expected);
        let by = actor("root@example.com");
        events.into_iter().fold(self.state, |state, event| {
            let seq = state.last_seq + 1;
            let recorded = record(seq, &by, &state, Some(event));
            state.apply(&recorded)
        })
    }

    /// Asserts a rejection whose message holds every needle.
    fn then_reject(self, needles: &[&str]) {
        match self.result {
            Err(Refused::Rejected(e)) => {
                for needle in needles {
                    assert!(e.to_string().contains(needle), "{needle:?} not in: {e}");
                }
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    /// Asserts the principal was refused, naming the role that would have allowed it.
    fn then_deny(self, needs: Role, scope: Scope) {
        match self.result {
            Err(Refused::Denied(denied)) => {
                assert_eq!((denied.needs, denied.scope), (needs, scope));
            }
            other => panic!("expected a denial, got {other:?}"),
        }
    }
}

fn owner() -> Principal {
    Principal::Owner
}

// ---- tokens ------------------------------------------------------------------------------------

#[test]
fn the_owner_creates_a_token_and_the_log_holds_only_its_hash() {
    let hash = TokenHash::of("hoist_secret");
    let state = given([]).when(
        &owner(),
        AccessCommand::CreateToken {
            id: token_id(1),
            identity: actor("ana@example.com"),
            name: Some("laptop".into()),
            hash,
            expires_at: Some(at(1000)),
        },
    );
    let state = state.then_expect(vec![Event::TokenCreated {
        id: token_id(1),
        identity: actor("ana@example.com"),
        name: Some("laptop".into()),
        hash,
        expires_at: Some(at(1000)),
    }]);
    let token = state.token_by_hash(&hash).expect("found by its hash");
    assert_eq!(token.identity, actor("ana@example.com"));
    assert!(!token.expired(at(999)));
    assert!(token.expired(at(1000)), "a token stops at its expiry");
}

#[test]
fn tokens_need_admin_on_every_app() {
    let app_admin = identity(
        "bo@example.com",
        vec![grant(Role::Admin, Some("api"), None)],
    );
    given([])
        .when(&app_admin, create_token(1, "ana@example.com"))
        .then_deny(Role::Admin, Scope::everything());
    given([create_token_event(1)])
        .when(&app_admin, AccessCommand::RevokeToken { id: token_id(1) })
        .then_deny(Role::Admin, Scope::everything());
    let admin = identity("bo@example.com", vec![grant(Role::Admin, None, None)]);
    given([])
        .when(&admin, create_token(1, "ana@example.com"))
        .then_expect(vec![create_token_event(1)]);
}

fn create_token_event(n: u8) -> Event {
    let AccessCommand::CreateToken {
        id,
        identity,
        name,
        hash,
        expires_at,
    } = create_token(n, "ana@example.com")
    else {
        unreachable!()
    };
    Event::TokenCreated {
        id,
        identity,
        name,
        hash,
        expires_at,
    }
}

#[test]
fn a_token_id_or_hash_is_never_used_twice() {
    given([create_token_event(1)])
        .when(&owner(), create_token(1, "bo@example.com"))
        .then_reject(&["token 000000000001 already exists"]);
    let mut same_hash = create_token(2, "bo@example.com");
    if let AccessCommand::CreateToken { hash, .. } = &mut same_hash {
        *hash = TokenHash::of("hoist_token1");
    }
    given([create_token_event(1)])
        .when(&owner(), same_hash)
        .then_reject(&["has the hash of token 000000000001"]);
}

#[test]
fn a_token_is_revoked_once_and_only_if_it_exists() {
    let state = given([create_token_event(1)])
        .when(&owner(), AccessCommand::RevokeToken { id: token_id(1) })
        .then_expect(vec![Event::TokenRevoked { id: token_id(1) }]);
    assert!(state.tokens[&token_id(1)].revoked.is_some());
    assert!(
        state
            .token_by_hash(&TokenHash::of("hoist_token1"))
            .is_some(),
        "a revoked token is still known, to say it was revoked"
    );
    given([
        create_token_event(1),
        Event::TokenRevoked { id: token_id(1) },
    ])
    .when(&owner(), AccessCommand::RevokeToken { id: token_id(1) })
    .then_reject(&["token 000000000001 is already revoked"]);
    given([])
        .when(&owner(), AccessCommand::RevokeToken { id: token_id(9) })
        .then_reject(&["token 000000000009 does not exist"]);
}

#[test]
fn a_token_name_is_one_short_line() {
    for (name, needle) in [
        ("  ", "must not be empty"),
        ("a\u{1b}[31m", "control characters"),
        (&"n".repeat(129)[..], "129 bytes: the limit is 128"),
    ] {
        let mut command = create_token(1, "ana@example.com");
        if let AccessCommand::CreateToken { name: n, .. } = &mut command {
            *n = Some(name.to_string());
        }
        given([]).when(&owner(), command).then_reject(&[needle]);
    }
}

// ---- grants ------------------------------------------------------------------------------------

fn grant_to(who: &str, grant: Grant) -> AccessCommand {
    AccessCommand::Grant {
        identity: actor(who),
        grant,
    }
}

fn granted(who: &str, grant: Grant) -> Event {
    Event::RoleGranted {
        identity: actor(who),
        grant,
    }
}

#[test]
fn an_admin_of_an_app_grants_on_that_app_only() {
    let api_admin = identity(
        "bo@example.com",
        vec![grant(Role::Admin, Some("api"), None)],
    );
    let on_staging = grant(Role::Deployer, Some("api"), Some("staging"));
    given([])
        .when(&api_admin, grant_to("ana@example.com", on_staging.clone()))
        .then_expect(vec![granted("ana@example.com", on_staging)]);
    given([])
        .when(
            &api_admin,
            grant_to("ana@example.com", grant(Role::Viewer, Some("web"), None)),
        )
        .then_deny(Role::Admin, Scope::app(&app("web")));
    given([])
        .when(
            &api_admin,
            grant_to("ana@example.com", grant(Role::Viewer, None, None)),
        )
        .then_deny(Role::Admin, Scope::everything());
}

#[test]
fn a_grant_never_gives_more_than_its_granter_holds() {
    // Admin on api/staging: may grant there, not on the whole app (production too).
    let staging_admin = identity(
        "bo@example.com",
        vec![grant(Role::Admin, Some("api"), Some("staging"))],
    );
    given([])
        .when(
            &staging_admin,
            grant_to("ana@example.com", grant(Role::Operator, Some("api"), None)),
        )
        .then_deny(Role::Admin, Scope::app(&app("api")));
    // A deployer may not hand on even its own role: granting is admin's.
    let deployer = identity(
        "bo@example.com",
        vec![grant(Role::Deployer, Some("api"), None)],
    );
    given([])
        .when(
            &deployer,
            grant_to("ana@example.com", grant(Role::Viewer, Some("api"), None)),
        )
        .then_deny(Role::Admin, Scope::app(&app("api")));
    // Nor may it take one back.
    given([granted(
        "ana@example.com",
        grant(Role::Viewer, Some("api"), None),
    )])
    .when(
        &deployer,
        AccessCommand::Revoke {
            identity: actor("ana@example.com"),
            grant: grant(Role::Viewer, Some("api"), None),
        },
    )
    .then_deny(Role::Admin, Scope::app(&app("api")));
}

#[test]
fn a_grant_names_an_existing_app_and_an_env_of_its_pipeline() {
    given([])
        .when(
            &owner(),
            grant_to("ana@example.com", grant(Role::Viewer, Some("nope"), None)),
        )
        .then_reject(&["app nope does not exist"]);
    given([])
        .when(
            &owner(),
            grant_to(
                "ana@example.com",
                grant(Role::Viewer, Some("api"), Some("dev")),
            ),
        )
        .then_reject(&["env dev is not in the pipeline of app api (staging, production)"]);
    given([])
        .when(
            &owner(),
            grant_to("ana@example.com", grant(Role::Viewer, None, Some("qa"))),
        )
        .then_reject(&["env qa is in the pipeline of no app"]);
    // An env of every app: any app that has it will do.
    let production_everywhere = grant(Role::Operator, None, Some("production"));
    given([])
        .when(
            &owner(),
            grant_to("ana@example.com", production_everywhere.clone()),
        )
        .then_expect(vec![granted("ana@example.com", production_everywhere)]);
}

#[test]
fn granting_what_is_held_changes_nothing() {
    let viewer = grant(Role::Viewer, Some("api"), None);
    given([granted("ana@example.com", viewer.clone())])
        .when(&owner(), grant_to("ana@example.com", viewer))
        .then_expect(vec![]);
}

#[test]
fn a_revocation_takes_back_exactly_one_grant_that_is_held() {
    let on_api = grant(Role::Deployer, Some("api"), None);
    let everywhere = grant(Role::Viewer, None, None);
    let state = given([
        granted("ana@example.com", on_api.clone()),
        granted("ana@example.com", everywhere.clone()),
    ])
    .when(
        &owner(),
        AccessCommand::Revoke {
            identity: actor("ana@example.com"),
            grant: on_api.clone(),
        },
    )
    .then_expect(vec![Event::RoleRevoked {
        identity: actor("ana@example.com"),
        grant: on_api.clone(),
    }]);
    assert_eq!(
        state.principal(&actor("ana@example.com")),
        identity("ana@example.com", vec![everywhere.clone()])
    );
    // A grant it does not hold (a narrower one, of another role) names what it does hold.
    given([granted("ana@example.com", everywhere)])
        .when(
            &owner(),
            AccessCommand::Revoke {
                identity: actor("ana@example.com"),
                grant: grant(Role::Viewer, Some("api"), None),
            },
        )
        .then_reject(&[
            "ana@example.com holds no viewer on api (every env) to revoke",
            "its grants: viewer on every app (every env)",
        ]);
}

// ---- chat links --------------------------------------------------------------------------------

#[test]
fn a_chat_user_is_linked_to_one_identity_by_an_admin_of_every_app() {
    let link = |who: &str| AccessCommand::Link {
        chat_id: chat("slack:T1/U1"),
        identity: actor(who),
    };
    let linked = Event::ChatLinked {
        chat_id: chat("slack:T1/U1"),
        identity: actor("ana@example.com"),
    };
    let state = given([])
        .when(&owner(), link("ana@example.com"))
        .then_expect(vec![linked.clone()]);
    assert_eq!(
        state.links[&chat("slack:T1/U1")].identity,
        actor("ana@example.com")
    );
    given([linked.clone()])
        .when(&owner(), link("ana@example.com"))
        .then_expect(vec![]);
    given([linked.clone()])
        .when(&owner(), link("bo@example.com"))
        .then_reject(&["already linked to ana@example.com", "unlink slack:T1/U1"]);
    let app_admin = identity(
        "bo@example.com",
        vec![grant(Role::Admin, Some("api"), None)],
    );
    given([])
        .when(&app_admin, link("bo@example.com"))
        .then_deny(Role::Admin, Scope::everything());
    let unlink = AccessCommand::Unlink {
        chat_id: chat("slack:T1/U1"),
    };
    let state = given([linked])
        .when(&owner(), unlink.clone())
        .then_expect(vec![Event::ChatUnlinked {
            chat_id: chat("slack:T1/U1"),
        }]);
    assert!(state.links.is_empty());
    given([])
        .when(&owner(), unlink)
        .then_reject(&["chat id slack:T1/U1 is not linked"]);
}

// ---- what the fold answers ---------------------------------------------------------------------

#[test]
fn an_identity_may_do_what_its_grants_allow_and_nothing_else() {
    let state = given([
        granted(
            "ana@example.com",
            grant(Role::Deployer, Some("api"), Some("staging")),
        ),
        granted(
            "bo@example.com",
            grant(Role::Operator, Some("api"), Some("production")),
        ),
    ])
    .state;
    let ana = state.principal(&actor("ana@example.com"));
    let production = Scope::env(&app("api"), &env("production"));
    let staging = Scope::env(&app("api"), &env("staging"));
    assert!(authorize(&ana, &Action::Deploy, &staging).is_ok());
    assert!(authorize(&ana, &Action::Deploy, &production).is_err());
    let bo = state.principal(&actor("bo@example.com"));
    assert!(authorize(&bo, &Action::Rollback, &production).is_ok());
    assert!(authorize(&bo, &Action::Deploy, &production).is_err());
    // Deny by default: an identity the chain never named may do nothing.
    let nobody = state.principal(&actor("eve@example.com"));
    for action in Action::ALL {
        assert!(authorize(&nobody, &action, &Scope::everything()).is_err());
    }

    let verdict = state.check(&actor("bo@example.com"), Action::Rollback, &production);
    assert!(verdict.allowed);
    assert_eq!(
        verdict.because,
        "bo@example.com holds operator on api/production, granted by root@example.com"
    );
    let verdict = state.check(&actor("bo@example.com"), Action::Deploy, &production);
    assert!(!verdict.allowed);
    assert_eq!(
        verdict.because,
        "bo@example.com may not deploy on api/production: that needs the deployer role there"
    );
    let verdict = state.check(&actor("eve@example.com"), Action::View, &staging);
    assert!(verdict.because.ends_with("access is denied by default)"));
}

#[test]
fn access_events_stay_on_the_access_chain_and_app_events_off_it() {
    let on_app = validate::check_event(
        &app("api"),
        &AppState::default(),
        &granted("ana@example.com", grant(Role::Viewer, None, None)),
    )
    .unwrap_err();
    assert_eq!(
        on_app.to_string(),
        "access events belong on the access chain, not on api"
    );
    let on_access = check_event(
        &AccessState::default(),
        &apps(),
        &Event::AppCreated {
            envs: vec![env("staging")],
        },
    )
    .unwrap_err();
    assert_eq!(
        on_access.to_string(),
        "create events belong on an app's chain, not on _access"
    );
    // And no app takes the access chain's name.
    let created = hoist_engine::decide(
        &AppName::access(),
        &AppState::default(),
        &hoist_engine::Command::CreateApp {
            pipeline: vec![env("staging")],
        },
    );
    assert!(matches!(created, Err(DomainError::ReservedApp(_))));
}

// ---- random histories --------------------------------------------------------------------------

const IDENTITIES: [&str; 3] = ["ana@example.com", "bo@example.com", "cy@example.com"];

fn any_grant() -> impl Strategy<Value = Grant> {
    (
        select(Role::ALL.to_vec()),
        proptest::option::of(select(vec!["api", "web", "nope"])),
        proptest::option::of(select(vec!["staging", "production", "dev", "qa"])),
    )
        .prop_map(|(role, app_name, env_name)| grant(role, app_name, env_name))
}

fn command() -> impl Strategy<Value = AccessCommand> {
    let who = || select(IDENTITIES.to_vec()).prop_map(actor);
    let chat_id = || select(vec!["slack:T1/U1", "matrix:@ana:example.org"]).prop_map(chat);
    prop_oneof![
        2 => (0..6u8, who(), 0..6u8).prop_map(|(id, identity, secret)| AccessCommand::CreateToken {
            id: token_id(id),
            identity,
            name: None,
            hash: TokenHash::of(&format!("hoist_{secret}")),
            expires_at: None,
        }),
        1 => (0..6u8).prop_map(|id| AccessCommand::RevokeToken { id: token_id(id) }),
        5 => (who(), any_grant()).prop_map(|(identity, grant)| AccessCommand::Grant { identity, grant }),
        3 => (who(), any_grant()).prop_map(|(identity, grant)| AccessCommand::Revoke { identity, grant }),
        1 => (chat_id(), who()).prop_map(|(chat_id, identity)| AccessCommand::Link { chat_id, identity }),
        1 => chat_id().prop_map(|chat_id| AccessCommand::Unlink { chat_id }),
        // issue 11: hooks, on the same chain.
        2 => (select(vec!["ci", "chat"]), proptest::option::of(select(vec!["api", "web", "nope"])))
            .prop_map(|(name, app_name)| AccessCommand::AddHook { hook: hook_spec(name, app_name) }),
        1 => (select(vec!["ci", "chat"]), proptest::option::of(select(vec!["api", "web"])))
            .prop_map(|(name, app_name)| AccessCommand::RemoveHook {
                name: name.parse().unwrap(),
                scope: Scope { app: app_name.map(app), env: None },
            }),
        1 => select(vec!["ci", "chat"]).prop_map(|name| AccessCommand::DisableHook {
            name: name.parse().unwrap(),
            reason: "410 Gone".into(),
        }),
        1 => (select(vec!["ci", "chat"]), proptest::option::of(select(vec!["api", "web"])), 0..4u128)
            .prop_map(|(name, app_name, id)| AccessCommand::Redeliver {
                name: name.parse().unwrap(),
                scope: Scope { app: app_name.map(app), env: None },
                delivery: Uuid::from_u128(id),
            }),
    ]
}

/// Who gives a command: the store's owner, or one of the identities with what the chain
/// grants it at that point.
#[derive(Debug, Clone)]
enum By {
    Owner,
    Identity(&'static str),
}

fn step() -> impl Strategy<Value = (AccessCommand, By, u64)> {
    let by = prop_oneof![
        1 => Just(By::Owner),
        3 => select(IDENTITIES.to_vec()).prop_map(By::Identity),
    ];
    (command(), by, 0..3u64)
}

/// The chain after `steps` (refused commands append nothing), and the state kept alongside.
fn run(steps: &[(AccessCommand, By, u64)]) -> (Vec<Recorded>, AccessState) {
    let mut history = Vec::new();
    let mut state = AccessState::default();
    let mut seq = 0;
    for (command, by, others) in steps {
        let (principal, actor_name) = match by {
            By::Owner => (Principal::Owner, actor("root@example.com")),
            By::Identity(name) => (state.principal(&actor(name)), actor(name)),
        };
        if authorize_command(&principal, command).is_err() {
            continue;
        }
        let Ok(events) = access::decide(&state, &apps(), command) else {
            continue;
        };
        // No accepted grant gives more than its granter holds.
        if let AccessCommand::Grant { grant, .. } = command {
            for action in Action::ALL.into_iter().filter(|a| grant.role.allows(*a)) {
                assert!(
                    authorize(&principal, &action, &grant.scope()).is_ok(),
                    "{principal:?} granted {grant} without {action} there"
                );
            }
        }
        seq += others + 1;
        for event in events {
            if let Err(e) = check_event(&state, &apps(), &event) {
                panic!("decide made {event:?}, which check_event rejects: {e}");
            }
            let recorded = record(seq, &actor_name, &state, Some(event));
            state = state.apply(&recorded);
            history.push(recorded);
        }
    }
    (history, state)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn replay_in_any_chunking_equals_incremental_apply(
        steps in proptest::collection::vec(step(), 0..60),
        cuts in proptest::collection::vec(any::<Index>(), 0..6),
    ) {
        let (history, incremental) = run(&steps);
        prop_assert_eq!(&AccessState::fold(&history), &incremental, "replay from scratch");

        let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut.index(history.len() + 1)).collect();
        bounds.extend([0, history.len()]);
        bounds.sort_unstable();
        let mut chunks = bounds.windows(2).map(|w| &history[w[0]..w[1]]);
        let mut chunked = AccessState::fold(chunks.next().expect("at least one chunk"));
        for chunk in chunks {
            chunked = chunk.iter().fold(chunked, AccessState::apply);
        }
        prop_assert_eq!(&chunked, &incremental);

        // What the fold keeps: every token found by its hash; grants on existing scopes only;
        // each identity's principal holds exactly its grants.
        prop_assert_eq!(incremental.by_hash.len(), incremental.tokens.len());
        for token in incremental.tokens.values() {
            prop_assert_eq!(incremental.token_by_hash(&token.hash), Some(token));
        }
        for ((holder, grant), record) in &incremental.grants {
            prop_assert_eq!(holder, &record.identity);
            prop_assert_ne!(grant.app.as_ref().map(AppName::as_str), Some("nope"));
        }
        for name in IDENTITIES {
            let Principal::Identity { grants, .. } = incremental.principal(&actor(name)) else {
                unreachable!()
            };
            let held: Vec<&Grant> = incremental
                .grants
                .keys()
                .filter(|(holder, _)| holder.as_str() == name)
                .map(|(_, grant)| grant)
                .collect();
            prop_assert_eq!(grants.iter().collect::<Vec<_>>(), held);
        }
        prop_assert_eq!(incremental.event_count, history.len() as u64);
        prop_assert_eq!(incremental.last_seq, history.last().map_or(0, |r| r.seq));
    }
}

// ---- hooks (issue 11) --------------------------------------------------------------------------

fn hook_spec(name: &str, app_name: Option<&str>) -> hoist_engine::hooks::HookSpec {
    hoist_engine::hooks::HookSpec {
        name: name.parse().unwrap(),
        format: hoist_engine::hooks::HookFormat::StandardWebhooks,
        url: "https://hooks.example/x".into(),
        app: app_name.map(app),
        env: None,
        kinds: hoist_engine::hooks::HookKind::defaults(),
        sealed_secret: vec![1, 2, 3],
        room: None,
    }
}

#[test]
fn an_admin_of_an_app_adds_a_hook_on_it_but_not_on_every_app() {
    let admin_of_api = identity(
        "ana@example.com",
        vec![grant(Role::Admin, Some("api"), None)],
    );
    given([])
        .when(
            &admin_of_api,
            AccessCommand::AddHook {
                hook: hook_spec("ci", Some("api")),
            },
        )
        .then_expect(vec![Event::HookAdded {
            hook: hook_spec("ci", Some("api")),
        }]);
    given([])
        .when(
            &admin_of_api,
            AccessCommand::AddHook {
                hook: hook_spec("ci", None),
            },
        )
        .then_deny(Role::Admin, Scope::everything());
    let deployer = identity(
        "bo@example.com",
        vec![grant(Role::Deployer, Some("api"), None)],
    );
    given([])
        .when(
            &deployer,
            AccessCommand::AddHook {
                hook: hook_spec("ci", Some("api")),
            },
        )
        .then_deny(
            Role::Admin,
            Scope {
                app: Some(app("api")),
                env: None,
            },
        );
}

#[test]
fn a_hook_name_is_taken_once_and_its_scope_names_existing_things() {
    let added = Event::HookAdded {
        hook: hook_spec("ci", None),
    };
    given([added.clone()])
        .when(
            &owner(),
            AccessCommand::AddHook {
                hook: hook_spec("ci", Some("api")),
            },
        )
        .then_reject(&["hook ci already exists"]);
    given([])
        .when(
            &owner(),
            AccessCommand::AddHook {
                hook: hook_spec("ci", Some("nope")),
            },
        )
        .then_reject(&["app nope does not exist"]);
    let mut on_qa = hook_spec("ci", Some("api"));
    on_qa.env = Some(env("qa"));
    given([])
        .when(&owner(), AccessCommand::AddHook { hook: on_qa })
        .then_reject(&["env qa"]);
}

#[test]
fn removing_and_redelivering_need_the_hook_and_admin_on_its_scope() {
    let added = Event::HookAdded {
        hook: hook_spec("ci", Some("api")),
    };
    let api = Scope {
        app: Some(app("api")),
        env: None,
    };
    // The scope a command names must be the recorded hook's (what it was authorized for).
    given([added.clone()])
        .when(
            &owner(),
            AccessCommand::RemoveHook {
                name: "ci".parse().unwrap(),
                scope: Scope::everything(),
            },
        )
        .then_reject(&["hook ci does not exist"]);
    let web_admin = identity(
        "ana@example.com",
        vec![grant(Role::Admin, Some("web"), None)],
    );
    given([added.clone()])
        .when(
            &web_admin,
            AccessCommand::RemoveHook {
                name: "ci".parse().unwrap(),
                scope: api.clone(),
            },
        )
        .then_deny(Role::Admin, api.clone());
    let delivery = Uuid::from_u128(9);
    let state = given([added.clone()])
        .when(
            &owner(),
            AccessCommand::Redeliver {
                name: "ci".parse().unwrap(),
                scope: api.clone(),
                delivery,
            },
        )
        .then_expect(vec![Event::HookRedeliveryRequested {
            name: "ci".parse().unwrap(),
            delivery,
        }]);
    let hook = &state.hooks[&"ci".parse().unwrap()];
    assert_eq!(hook.redeliveries, vec![(delivery, 2)]);
    let state = given([added])
        .when(
            &owner(),
            AccessCommand::RemoveHook {
                name: "ci".parse().unwrap(),
                scope: api,
            },
        )
        .then_expect(vec![Event::HookRemoved {
            name: "ci".parse().unwrap(),
        }]);
    assert!(state.hooks.is_empty());
}

#[test]
fn a_hook_is_disabled_once() {
    let added = Event::HookAdded {
        hook: hook_spec("ci", None),
    };
    let disable = || AccessCommand::DisableHook {
        name: "ci".parse().unwrap(),
        reason: "410 Gone".into(),
    };
    let state = given([added.clone()])
        .when(&owner(), disable())
        .then_expect(vec![Event::HookDisabled {
            name: "ci".parse().unwrap(),
            reason: "410 Gone".into(),
        }]);
    assert_eq!(
        state.hooks[&"ci".parse().unwrap()].disabled.as_deref(),
        Some("410 Gone")
    );
    let disabled = Event::HookDisabled {
        name: "ci".parse().unwrap(),
        reason: "410 Gone".into(),
    };
    given([added, disabled])
        .when(&owner(), disable())
        .then_expect(vec![]);
    given([])
        .when(&owner(), disable())
        .then_reject(&["hook ci does not exist"]);
}

#[test]
fn a_hook_takes_the_events_of_its_scope_and_kinds() {
    use hoist_engine::hooks::{HookKind, HookSpec};
    let mut spec: HookSpec = hook_spec("ci", Some("api"));
    spec.env = Some(env("production"));
    let lock = Event::EnvLocked {
        env: env("production"),
        reason: "freeze".into(),
    };
    let staging_lock = Event::EnvLocked {
        env: env("staging"),
        reason: "freeze".into(),
    };
    let created = Event::AppCreated { envs: vec![] };
    assert!(spec.takes(&app("api"), &lock));
    assert!(!spec.takes(&app("web"), &lock), "another app");
    assert!(!spec.takes(&app("api"), &staging_lock), "another env");
    assert!(!spec.takes(&app("api"), &created), "not a default kind");
    spec.env = None;
    spec.kinds = [HookKind::All].into();
    assert!(spec.takes(&app("api"), &created));
    spec.kinds = [HookKind::Hook].into();
    let removed = Event::HookRemoved {
        name: "x".parse().unwrap(),
    };
    assert!(
        !spec.takes(&AppName::access(), &removed),
        "scoped to api: the access chain is no app of it"
    );
    spec.app = None;
    assert!(spec.takes(&AppName::access(), &removed));
}
