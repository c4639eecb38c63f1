//! Who may change what: [`authorize`] decides whether a principal may take an action on a scope
//! of apps × envs, purely, from the roles of CLI.md ("Identities, tokens and roles"):
//!
//! | role | may |
//! |---|---|
//! | viewer | view |
//! | deployer | view, deploy (and `builds register`), config, promote |
//! | operator | view, rollback, lock (and unlock), apply |
//! | admin | everything: also targets, policies, reveal, grants, `apps create` |
//!
//! A grant names one role on an app (or every app) and an env (or every env); it covers a scope
//! that is no wider on either axis. So an action on a whole app (`builds register`) needs a grant
//! on every env of it, and `apps create` needs `admin` on every app. `promote` needs `deployer` on
//! the target env only. A command run directly on a store runs as its [`Principal::Owner`], which
//! may do anything (whoever opens the store can); one that comes through the server runs as the
//! token's [`Principal::Identity`], with the grants the access chain holds for it (`access`).
//! Deny by default: an identity without a grant that allows the action is refused.

use crate::decide::Command;
use crate::names::{Actor, AppName, EnvName};
use crate::state::AppState;
use crate::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Principal {
    /// Direct access to the store or stream: allowed everything.
    #[default]
    Owner,
    /// A person or machine known by name, allowed what its grants say.
    Identity { name: Actor, grants: Vec<Grant> },
}

/// A role, on a scope. `None` is every app, every env.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    pub app: Option<AppName>,
    pub env: Option<EnvName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Deployer,
    Operator,
    Admin,
}

/// What a principal wants to do: the ACTION of `hoist access check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    View,
    Deploy,
    Config,
    Promote,
    Rollback,
    Lock,
    Apply,
    Reveal,
    Admin,
}

/// Where: one app or every app (`None`), one env of it or every env (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub app: Option<AppName>,
    pub env: Option<EnvName>,
}

/// The refusal: who, what, where, and which role would have allowed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{who} may not {action} on {scope}: that needs the {needs} role there")]
pub struct Denied {
    pub who: Actor,
    pub action: Action,
    pub scope: Scope,
    /// The least role that allows the action.
    pub needs: Role,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Deployer, Role::Operator, Role::Admin];

    /// Whether this role allows `action` (on the grant's scope).
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Viewer => action == View,
            Role::Deployer => matches!(action, View | Deploy | Config | Promote),
            Role::Operator => matches!(action, View | Rollback | Lock | Apply),
            Role::Admin => true,
        }
    }

    /// The least role that allows `action`.
    fn least_for(action: Action) -> Role {
        Role::ALL
            .into_iter()
            .find(|role| role.allows(action))
            .unwrap_or(Role::Admin)
    }
}

impl Grant {
    /// Whether this grant's scope holds `scope` whole: it is at least as wide on each axis.
    pub fn covers(&self, scope: &Scope) -> bool {
        holds(&self.app, &scope.app) && holds(&self.env, &scope.env)
    }

    /// The apps × envs this grant is on.
    pub fn scope(&self) -> Scope {
        Scope {
            app: self.app.clone(),
            env: self.env.clone(),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.role, self.scope())
    }
}

/// A grant on `granted` (`None`: every one) holds `wanted` (`None`: every one) when it is at
/// least as wide.
fn holds<T: PartialEq>(granted: &Option<T>, wanted: &Option<T>) -> bool {
    match granted {
        None => true,
        Some(granted) => wanted.as_ref() == Some(granted),
    }
}

impl Scope {
    /// Every app, every env.
    pub fn everything() -> Self {
        Scope {
            app: None,
            env: None,
        }
    }

    /// One env of one app.
    pub fn env(app: &AppName, env: &EnvName) -> Self {
        Scope {
            app: Some(app.clone()),
            env: Some(env.clone()),
        }
    }

    /// One app, every env of it.
    pub fn app(app: &AppName) -> Self {
        Scope {
            app: Some(app.clone()),
            env: None,
        }
    }
}

/// Whether `principal` may take `action` on `scope`.
pub fn authorize(principal: &Principal, action: &Action, scope: &Scope) -> Result<(), Denied> {
    match principal {
        Principal::Owner => Ok(()),
        Principal::Identity { name, grants } => {
            if grants
                .iter()
                .any(|grant| grant.role.allows(*action) && grant.covers(scope))
            {
                Ok(())
            } else {
                Err(Denied {
                    who: name.clone(),
                    action: *action,
                    scope: scope.clone(),
                    needs: Role::least_for(*action),
                })
            }
        }
    }
}

/// The action `command` takes on `app`, and where, given the app as it stands (`promote`
/// without `--to` goes to the env after its source; without one, the whole app is asked for
/// and `decide` names the real problem to an owner).
pub fn required(app: &AppName, command: &Command, state: &AppState) -> (Action, Scope) {
    let on = |env: &EnvName| Scope::env(app, env);
    match command {
        Command::CreateApp { .. } => (Action::Admin, Scope::everything()),
        Command::RegisterBuild { .. } => (Action::Deploy, Scope::app(app)),
        Command::Deploy { env, .. } => (Action::Deploy, on(env)),
        Command::SetConfig { env, .. } | Command::UnsetConfig { env, .. } => {
            (Action::Config, on(env))
        }
        Command::Promote { from, to } => {
            let target = to.as_ref().or_else(|| state.next_env(from));
            (Action::Promote, target.map_or_else(|| Scope::app(app), on))
        }
        Command::Rollback { env, .. } => (Action::Rollback, on(env)),
        Command::Lock { env, .. } | Command::Unlock { env } => (Action::Lock, on(env)),
        Command::SetTarget { env, .. } | Command::SetPolicy { env, .. } => (Action::Admin, on(env)),
        // What the reconciler reports after applying (and the auto-rollback decided with it).
        Command::RecordRollout { env, .. } => (Action::Apply, on(env)),
        // issue 16: a pin is a lock's kin (on-call pins and unpins, as a rollback pins);
        // auto-promotion and drift are the reconciler's reports.
        Command::Pin { env, .. } | Command::Unpin { env } => (Action::Lock, on(env)),
        Command::RollbackToLastHealthy { env } => (Action::Rollback, on(env)),
        Command::PromoteForced { from, to } => {
            let target = to.as_ref().or_else(|| state.next_env(from));
            (Action::Promote, target.map_or_else(|| Scope::app(app), on))
        }
        Command::SetPolicies { env, .. } => (Action::Admin, on(env)),
        Command::AutoPromote { to, .. } => (Action::Apply, on(to)),
        Command::RecordDrift { env, .. } | Command::RecordHealed { env, .. } => {
            (Action::Apply, on(env))
        }
        // issue 14: scale and domains are checked as a deploy to the env (CLI.md).
        Command::Scale { env, .. }
        | Command::AddDomain { env, .. }
        | Command::RemoveDomain { env, .. } => (Action::Deploy, on(env)),
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::View => "view",
            Action::Deploy => "deploy",
            Action::Config => "config",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Lock => "lock",
            Action::Apply => "apply",
            Action::Reveal => "reveal",
            Action::Admin => "admin",
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.app, &self.env) {
            (Some(app), Some(env)) => write!(f, "{app}/{env}"),
            (Some(app), None) => write!(f, "{app} (every env)"),
            (None, Some(env)) => write!(f, "{env} of every app"),
            (None, None) => f.write_str("every app (every env)"),
        }
    }
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::View,
        Action::Deploy,
        Action::Config,
        Action::Promote,
        Action::Rollback,
        Action::Lock,
        Action::Apply,
        Action::Reveal,
        Action::Admin,
    ];
}

/// `--role`: `viewer`, `deployer`, `operator` or `admin`.
impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, ValidationError> {
        Role::ALL
            .into_iter()
            .find(|role| role.to_string() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "role",
                    s,
                    "must be one of viewer, deployer, operator, admin",
                )
            })
    }
}

/// ACTION of `hoist access check`.
impl FromStr for Action {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, ValidationError> {
        Action::ALL
            .into_iter()
            .find(|action| action.to_string() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "action",
                    s,
                    "must be one of view, deploy, config, promote, rollback, lock, apply, reveal, admin",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn identity(grants: Vec<Grant>) -> Principal {
        Principal::Identity {
            name: "ana@example.com".parse().unwrap(),
            grants,
        }
    }
    fn api(env_name: &str) -> Scope {
        Scope::env(&app("api"), &env(env_name))
    }

    const EVERY_ACTION: [Action; 9] = [
        Action::View,
        Action::Deploy,
        Action::Config,
        Action::Promote,
        Action::Rollback,
        Action::Lock,
        Action::Apply,
        Action::Reveal,
        Action::Admin,
    ];

    #[test]
    fn roles_and_actions_read_as_they_are_written() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
        for action in Action::ALL {
            assert_eq!(action.to_string().parse::<Action>(), Ok(action));
        }
        assert_eq!("owner".parse::<Role>().unwrap_err().field, "role");
        assert_eq!("Deploy".parse::<Action>().unwrap_err().field, "action");
        let everywhere_staging = Scope {
            app: None,
            env: Some(env("staging")),
        };
        assert_eq!(everywhere_staging.to_string(), "staging of every app");
    }

    #[test]
    fn the_owner_may_do_anything_anywhere() {
        // Given the store's owner, when it takes any action on any scope, then it is allowed.
        for action in EVERY_ACTION {
            for scope in [
                Scope::everything(),
                Scope::app(&app("api")),
                api("production"),
            ] {
                assert_eq!(authorize(&Principal::Owner, &action, &scope), Ok(()));
            }
        }
    }

    #[test]
    fn each_role_allows_exactly_its_actions_of_cli_md() {
        use Action::*;
        let table: [(Role, &[Action]); 4] = [
            (Role::Viewer, &[View]),
            (Role::Deployer, &[View, Deploy, Config, Promote]),
            (Role::Operator, &[View, Rollback, Lock, Apply]),
            (Role::Admin, &EVERY_ACTION),
        ];
        for (role, allowed) in table {
            // Given the role on every app and env,
            let who = identity(vec![grant(role, None, None)]);
            for action in EVERY_ACTION {
                // when it takes an action on api/production, then only its own are allowed.
                let outcome = authorize(&who, &action, &api("production"));
                assert_eq!(
                    outcome.is_ok(),
                    allowed.contains(&action),
                    "{role} {action}: {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn a_grant_on_one_env_allows_nothing_in_another_or_on_the_whole_app() {
        // Given deployer on api/staging only,
        let who = identity(vec![grant(Role::Deployer, Some("api"), Some("staging"))]);
        // when deploying to staging, then allowed;
        assert_eq!(authorize(&who, &Action::Deploy, &api("staging")), Ok(()));
        // to production, another app's staging, or api as a whole, then denied.
        for scope in [
            api("production"),
            Scope::env(&app("web"), &env("staging")),
            Scope::app(&app("api")),
            Scope::everything(),
        ] {
            assert!(authorize(&who, &Action::Deploy, &scope).is_err(), "{scope}");
        }
    }

    #[test]
    fn promote_needs_deployer_on_the_target_env_only() {
        let state = AppState {
            pipeline: vec![env("staging"), env("production")],
            ..AppState::default()
        };
        let promote = Command::Promote {
            from: env("staging"),
            to: None,
        };
        // Given a promotion from staging, its scope is the next env: production.
        let (action, scope) = required(&app("api"), &promote, &state);
        assert_eq!((action, &scope), (Action::Promote, &api("production")));
        // When the identity is deployer on production only, then it may promote;
        let target_only = identity(vec![grant(Role::Deployer, Some("api"), Some("production"))]);
        assert_eq!(authorize(&target_only, &action, &scope), Ok(()));
        // when deployer on the source only, then not.
        let source_only = identity(vec![grant(Role::Deployer, Some("api"), Some("staging"))]);
        assert!(authorize(&source_only, &action, &scope).is_err());
    }

    #[test]
    fn operators_recover_without_deploy_rights() {
        // Given operator on api/production,
        let on_call = identity(vec![grant(Role::Operator, Some("api"), Some("production"))]);
        // when rolling back, locking or applying there, then allowed;
        for action in [Action::Rollback, Action::Lock, Action::Apply] {
            assert_eq!(authorize(&on_call, &action, &api("production")), Ok(()));
        }
        // when deploying or changing config, then denied, naming the role that would allow it.
        let denied = authorize(&on_call, &Action::Deploy, &api("production")).unwrap_err();
        assert_eq!(denied.needs, Role::Deployer);
        assert_eq!(
            denied.to_string(),
            "ana@example.com may not deploy on api/production: that needs the deployer role there"
        );
        assert!(authorize(&on_call, &Action::Config, &api("production")).is_err());
    }

    #[test]
    fn creating_an_app_needs_admin_on_every_app() {
        let create = Command::CreateApp {
            pipeline: vec![env("staging")],
        };
        let (action, scope) = required(&app("api"), &create, &AppState::default());
        // Given admin on api alone, when creating an app, then denied;
        let app_admin = identity(vec![grant(Role::Admin, Some("api"), None)]);
        let denied = authorize(&app_admin, &action, &scope).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "ana@example.com may not admin on every app (every env): that needs the admin role there"
        );
        // given admin on every app, then allowed.
        let admin = identity(vec![grant(Role::Admin, None, None)]);
        assert_eq!(authorize(&admin, &action, &scope), Ok(()));
    }

    #[test]
    fn targets_and_policies_are_admin_and_recorded_rollouts_are_apply() {
        let state = AppState::default();
        let production = env("production");
        for (command, action) in [
            (
                Command::SetPolicy {
                    env: production.clone(),
                    auto_rollback: true,
                },
                Action::Admin,
            ),
            (
                Command::RecordRollout {
                    env: production.clone(),
                    version: crate::ReleaseVersion::FIRST,
                    outcome: crate::Outcome::Failed,
                    detail: String::new(),
                },
                Action::Apply,
            ),
            (
                Command::Unlock {
                    env: production.clone(),
                },
                Action::Lock,
            ),
        ] {
            assert_eq!(
                required(&app("api"), &command, &state),
                (action, api("production"))
            );
        }
        // A deployer on api/production may not point it at another cluster.
        let deployer = identity(vec![grant(Role::Deployer, Some("api"), None)]);
        assert!(authorize(&deployer, &Action::Admin, &api("production")).is_err());
    }

    #[test]
    fn registering_a_build_needs_a_grant_on_every_env_of_the_app() {
        let register = Command::RegisterBuild {
            image: format!("registry.example/api@sha256:{}", "1".repeat(64))
                .parse()
                .unwrap(),
            commit: None,
            note: None,
            processes: Default::default(),
            release_command: None,
        };
        let (action, scope) = required(&app("api"), &register, &AppState::default());
        assert_eq!(scope, Scope::app(&app("api")));
        let app_wide = identity(vec![grant(Role::Deployer, Some("api"), None)]);
        assert_eq!(authorize(&app_wide, &action, &scope), Ok(()));
        let one_env = identity(vec![grant(Role::Deployer, Some("api"), Some("staging"))]);
        assert!(authorize(&one_env, &action, &scope).is_err());
    }
}
