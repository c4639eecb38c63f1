//! End-to-end tests: the real `hoist` binary, real stores in temp dirs, real processes.
//! Each scenario is a function of a `Hoist` so every backend runs the same suite.

mod adapters;
mod concurrency;
mod errors;
mod follow;
mod harness;
mod kube;
mod kube_apiserver;
mod models;
mod scenario;
mod serve;
mod transfer;

use harness::Hoist;

mod sled {
    use super::*;

    #[test]
    fn team_release_life() {
        scenario::team_release_life(&Hoist::sled());
    }

    #[test]
    fn bad_input_is_rejected_and_appends_nothing() {
        errors::bad_input_is_rejected_and_appends_nothing(&Hoist::sled());
    }

    #[test]
    fn missing_secret_key_is_named() {
        errors::missing_secret_key_is_named(&Hoist::sled());
    }

    #[test]
    fn ten_parallel_config_sets_lose_nothing() {
        concurrency::parallel_config_sets_lose_nothing(&Hoist::sled(), 10);
    }

    #[test]
    fn export_import_round_trip() {
        transfer::export_import_round_trip(&Hoist::sled(), &Hoist::sled());
    }

    #[test]
    fn tampered_imports_are_refused() {
        transfer::tampered_imports_are_refused(&Hoist::sled(), &Hoist::sled());
    }

    #[test]
    fn exec_target_gets_the_release_on_stdin_and_in_its_environment() {
        adapters::exec_target_gets_the_release_on_stdin_and_in_its_environment(&Hoist::sled());
    }

    #[test]
    fn manifests_target_writes_valid_stable_yaml() {
        adapters::manifests_target_writes_valid_stable_yaml(&Hoist::sled());
    }

    #[test]
    fn serve_picks_up_a_new_release_by_itself() {
        serve::serve_picks_up_a_new_release_by_itself(&Hoist::sled());
    }

    #[test]
    fn serve_killed_between_apply_and_record_records_once() {
        serve::serve_killed_between_apply_and_record_records_once(&Hoist::sled());
    }

    #[test]
    fn kube_apply_reapply_and_rollback() {
        kube::kube_apply_reapply_and_rollback(&Hoist::sled());
    }

    #[test]
    fn kube_rollout_that_never_becomes_available() {
        kube::kube_rollout_that_never_becomes_available(&Hoist::sled());
    }

    #[test]
    fn follow_sees_new_events() {
        follow::follow_sees_new_events(&Hoist::sled());
    }

    #[test]
    fn killed_rebuild_leaves_no_trace() {
        models::killed_rebuild_leaves_no_trace(&Hoist::sled());
    }

    #[test]
    fn time_travel_matches_a_hand_built_history() {
        models::time_travel_matches_a_hand_built_history(&Hoist::sled());
    }
}

#[test]
fn kube_standin_rejects_what_a_real_api_server_rejects() {
    kube::standin_rejects_what_a_real_api_server_rejects();
}
