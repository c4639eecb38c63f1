//! End-to-end tests: the real `hoist` binary, real stores in temp dirs, real processes.
//! Each scenario is a function of a `Hoist` so every backend runs the same suite.

mod adapters;
mod concurrency;
mod errors;
mod failover;
mod faults;
mod follow;
mod harness;
mod kube;
mod kube_apiserver;
mod models;
mod nats_limits;
#[path = "../support/nats_server.rs"]
mod nats_server;
mod poison;
mod scenario;
mod serve;
mod transfer;

use harness::Hoist;
use nats_server::NatsServer;

/// A fresh standalone JetStream server, and a `Hoist` on a stream of it.
fn nats() -> (NatsServer, Hoist) {
    let server = NatsServer::start();
    let hoist = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    (server, hoist)
}

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

mod nats {
    use super::*;

    #[test]
    fn team_release_life() {
        let (_server, h) = nats();
        scenario::team_release_life(&h);
    }

    #[test]
    fn bad_input_is_rejected_and_appends_nothing() {
        let (_server, h) = nats();
        errors::bad_input_is_rejected_and_appends_nothing(&h);
    }

    #[test]
    fn ten_parallel_config_sets_lose_nothing() {
        let (_server, h) = nats();
        concurrency::parallel_config_sets_lose_nothing(&h, 10);
    }

    #[test]
    fn tampered_imports_are_refused() {
        let (_server, to) = nats();
        transfer::tampered_imports_are_refused(&Hoist::sled(), &to);
    }

    #[test]
    fn export_from_sled_import_to_nats_and_back() {
        let (_server, on_nats) = nats();
        let back_on_sled = Hoist::sled();
        transfer::export_import_round_trip(&Hoist::sled(), &on_nats);
        transfer::import_into(&on_nats, &back_on_sled);
    }

    #[test]
    fn follow_sees_new_events() {
        let (_server, h) = nats();
        follow::follow_sees_new_events(&h);
    }

    #[test]
    fn serve_picks_up_a_new_release_by_itself() {
        let (_server, h) = nats();
        serve::serve_picks_up_a_new_release_by_itself(&h);
    }

    #[test]
    fn serve_killed_between_apply_and_record_records_once() {
        let (_server, h) = nats();
        serve::serve_killed_between_apply_and_record_records_once(&h);
    }

    #[test]
    fn two_serves_share_the_work_and_apply_each_release_once() {
        let (_server, h) = nats();
        serve::two_serves_share_the_work_and_apply_each_release_once(&h);
    }

    #[test]
    fn a_killed_serve_leaves_the_work_to_the_other() {
        let (_server, h) = nats();
        serve::a_killed_serve_leaves_the_work_to_the_other(&h);
    }

    #[test]
    fn kill9_of_the_server_during_a_burst_loses_no_acknowledged_append() {
        faults::kill9_of_the_server_during_a_burst_loses_no_acknowledged_append();
    }

    #[test]
    fn a_recreated_stream_is_not_answered_from_the_old_cache() {
        faults::a_recreated_stream_is_not_answered_from_the_old_cache();
    }

    #[test]
    fn a_config_over_the_servers_max_payload_is_rejected() {
        nats_limits::a_config_over_the_servers_max_payload_is_rejected();
    }

    #[test]
    fn a_config_over_the_streams_max_msg_size_is_rejected() {
        nats_limits::a_config_over_the_streams_max_msg_size_is_rejected();
    }

    #[test]
    fn a_poisoned_stream_is_read_past_by_every_command() {
        poison::a_poisoned_stream_is_read_past_by_every_command();
    }

    #[test]
    fn killing_the_stream_leader_mid_apply_records_each_outcome_once() {
        failover::killing_the_stream_leader_mid_apply_records_each_outcome_once();
    }

    #[test]
    fn an_outcome_unrecorded_for_longer_than_the_patience_is_recorded_later_not_reapplied() {
        failover::an_outcome_unrecorded_for_longer_than_the_patience_is_recorded_later_not_reapplied();
    }

    #[test]
    fn r3_cluster_survives_losing_a_node() {
        faults::r3_cluster_survives_losing_a_node();
    }
}
