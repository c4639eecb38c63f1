//! End-to-end tests: the real `hoist` binary, real stores in temp dirs, real processes.
//! Each scenario is a function of a `Hoist` so every backend runs the same suite.

mod access;
mod adapters;
mod api;
mod api_auth;
mod chatops; // issue 12
mod concurrency;
mod disk_full;
mod errors;
mod failover;
mod faults;
mod follow;
// issue 14
mod formation;
mod harness;
mod hooks;
#[path = "../support/http.rs"]
mod http_support;
mod kube;
mod kube_apiserver;
mod limits;
mod manual;
mod models;
mod nats_auth;
mod nats_limits;
#[path = "../support/nats_server.rs"]
mod nats_server;
mod output;
mod pipelines; // issue 16
mod poison;
mod remote;
mod scenario;
mod secrets;
mod serve;
#[path = "../support/slack_socket.rs"]
mod slack_socket; // issue 12
mod streams; // issue 15
mod subscribers;
mod torture;
mod transfer;
mod web; // issue 13

use harness::Hoist;
use nats_server::NatsServer;

/// A fresh standalone JetStream server, and a `Hoist` on a stream of it.
fn nats() -> (NatsServer, Hoist) {
    let server = NatsServer::start();
    let hoist = Hoist::nats(&server.url(), "HOIST", &server.store_dir());
    (server, hoist)
}

/// Iterations of a crash-torture test: `HOIST_TORTURE_ITERATIONS`, else `default`.
fn torture_iterations(default: usize) -> usize {
    std::env::var("HOIST_TORTURE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

mod sled {
    use super::*;

    #[test]
    fn hooks_deliveries_are_signed_retried_in_order_and_logged() {
        subscribers::deliveries_are_signed_retried_in_order_and_logged(&Hoist::sled());
    }

    #[test]
    fn hooks_serve_killed_between_send_and_record_sends_again_with_the_same_id() {
        subscribers::a_serve_killed_between_send_and_record_sends_again_with_the_same_id(
            &Hoist::sled(),
        );
    }

    #[test]
    fn hooks_receiver_down_then_up_gets_everything_in_order() {
        subscribers::a_receiver_down_then_up_gets_everything_in_order(&Hoist::sled());
    }

    #[test]
    fn hooks_removed_and_gone_stop_and_others_go_on() {
        subscribers::removed_and_gone_hooks_stop_and_others_go_on(&Hoist::sled());
    }

    #[test]
    fn hooks_bad_input_is_refused_and_nothing_appended() {
        subscribers::bad_hooks_are_refused_and_nothing_appended(&Hoist::sled());
    }

    #[test]
    fn hooks_a_matrix_room_hears_of_releases_once() {
        subscribers::a_matrix_room_hears_of_releases_once(&Hoist::sled());
    }

    #[test]
    fn hooks_slack_gets_block_kit_and_its_url_stays_secret() {
        subscribers::slack_gets_block_kit_and_its_url_stays_secret(&Hoist::sled());
    }

    #[test]
    fn hooks_through_the_server_follow_the_roles() {
        subscribers::hooks_through_the_server_follow_the_roles(&Hoist::sled());
    }

    #[test]
    fn hooks_a_rotated_secret_signs_beside_the_previous_one() {
        subscribers::a_rotated_secret_signs_beside_the_previous_one(&Hoist::sled());
    }

    #[test]
    fn hooks_crash_torture_serve_killed_while_delivering() {
        subscribers::deliveries_survive_serve_killed_at_random(
            &Hoist::sled(),
            torture_iterations(30),
        );
    }

    #[test]
    fn chat_the_matrix_bot_obeys_linked_people_under_their_roles() {
        subscribers::the_matrix_bot_obeys_linked_people_under_their_roles(&Hoist::sled());
    }

    #[test]
    fn chat_socket_mode_runs_each_command_once_under_its_roles() {
        chatops::socket_mode_runs_each_command_once_under_its_roles(&Hoist::sled());
    }

    #[test]
    fn chat_socket_mode_retries_a_refused_app_token_and_says_why() {
        chatops::a_refused_app_token_is_retried_and_said(&Hoist::sled());
    }

    #[test]
    fn chat_slack_commands_are_signed_acknowledged_and_answered() {
        subscribers::slack_commands_are_signed_acknowledged_and_answered(&Hoist::sled());
    }

    #[test]
    fn hooks_two_serves_on_one_store_send_each_delivery_once() {
        subscribers::two_serves_send_each_delivery_once(&Hoist::sled());
    }

    #[test]
    fn crash_torture_writers_rebuilds_and_serve() {
        let tally = torture::writers_rebuilds_and_serve_survive_sigkill(
            &Hoist::sled(),
            torture_iterations(150),
        );
        eprintln!("torture (embedded): {tally:?}");
    }

    #[test]
    fn admin_rebuild_replaces_models_that_cannot_be_opened() {
        disk_full::admin_rebuild_replaces_models_that_cannot_be_opened();
    }

    #[test]
    fn damage_in_the_middle_of_the_log_is_refused_and_salvaged() {
        disk_full::damage_in_the_middle_of_the_log_is_refused_and_salvaged();
    }

    #[test]
    fn a_full_disk_is_a_clean_exit_4_and_the_store_recovers() {
        disk_full::a_full_disk_is_a_clean_exit_4_and_the_store_recovers();
    }

    #[test]
    fn a_store_refuses_a_key_other_than_the_one_its_secrets_are_sealed_with() {
        secrets::a_store_refuses_a_key_other_than_the_one_its_secrets_are_sealed_with(
            &Hoist::sled(),
        );
    }

    #[test]
    fn manifests_yaml_keeps_every_string_a_string() {
        adapters::manifests_yaml_keeps_every_string_a_string(&Hoist::sled());
    }

    #[test]
    fn oversized_input_is_rejected_naming_the_field_and_the_limit() {
        limits::oversized_input_is_rejected_naming_the_field_and_the_limit(&Hoist::sled());
    }

    #[test]
    fn a_background_process_does_not_hold_the_apply() {
        hooks::a_background_process_does_not_hold_the_apply(&Hoist::sled());
    }

    #[test]
    fn an_overrunning_hook_is_killed_with_its_group() {
        hooks::an_overrunning_hook_is_killed_with_its_group(&Hoist::sled());
    }

    #[test]
    fn a_hook_sees_only_the_environment_it_is_given() {
        hooks::a_hook_sees_only_the_environment_it_is_given(&Hoist::sled());
    }

    #[test]
    fn a_hanging_hook_does_not_delay_another_app() {
        serve::a_hanging_hook_does_not_delay_another_app(&Hoist::sled());
    }

    #[test]
    fn team_release_life() {
        scenario::team_release_life(&Hoist::sled());
    }

    #[test]
    fn identities_tokens_and_roles() {
        access::identities_tokens_and_roles(&Hoist::sled(), &Hoist::sled());
    }

    #[test]
    fn forged_access_imports_are_refused() {
        access::forged_access_imports_are_refused(&Hoist::sled(), &Hoist::sled());
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
    fn repeated_event_ids_are_refused_with_their_line() {
        transfer::repeated_event_ids_are_refused_with_their_line(&Hoist::sled(), &Hoist::sled());
    }

    #[test]
    fn impossible_histories_are_refused() {
        transfer::impossible_histories_are_refused(&Hoist::sled(), &Hoist::sled());
    }

    #[test]
    fn killed_import_leaves_all_or_nothing() {
        transfer::killed_import_leaves_all_or_nothing(
            &|| (Box::new(()), Hoist::sled()),
            1000,
            torture_iterations(20) as u32,
        );
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

    // issue 14
    #[test]
    fn processes_scale_and_domains_from_the_cli() {
        formation::processes_scale_and_domains_from_the_cli(&Hoist::sled());
    }

    #[test]
    fn manifests_and_exec_targets_get_the_formation() {
        formation::manifests_and_exec_targets_get_the_formation(&Hoist::sled());
    }

    #[test]
    fn kube_formation() {
        formation::kube_formation(&Hoist::sled());
    }

    #[test]
    fn formation_through_the_server() {
        formation::formation_through_the_server(&Hoist::sled());
    }

    #[test]
    fn serve_applies_a_scale_change_under_the_same_version() {
        formation::serve_applies_a_scale_change_under_the_same_version(&Hoist::sled());
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

    #[test]
    fn huge_reason_then_status_works() {
        output::huge_reason_then_status_works(&Hoist::sled());
    }

    #[test]
    fn closed_stdout_ends_quietly() {
        output::closed_stdout_ends_quietly(&Hoist::sled());
    }

    #[test]
    fn usage_errors_are_one_line() {
        output::usage_errors_are_one_line(&Hoist::sled());
    }

    #[test]
    fn limits_and_signed_versions() {
        output::limits_and_signed_versions(&Hoist::sled());
    }

    #[test]
    fn read_only_commands_never_create_a_store() {
        output::read_only_commands_never_create_a_store();
    }

    #[test]
    fn free_text_is_data_not_terminal_control() {
        output::free_text_is_data_not_terminal_control(&Hoist::sled());
    }

    #[test]
    fn serve_answers_http_and_stops_on_sigterm() {
        api::serve_answers_http_and_stops_on_sigterm(&Hoist::sled());
    }

    #[test]
    fn a_slow_loris_client_is_cut_off() {
        api::a_slow_loris_client_is_cut_off(&Hoist::sled());
    }

    #[test]
    fn an_admin_token_drives_the_api() {
        api_auth::an_admin_token_drives_the_api(&Hoist::sled());
    }

    #[test]
    fn a_team_works_through_the_server() {
        remote::a_team_works_through_the_server(&Hoist::sled());
    }

    #[test]
    fn two_servers_answer_the_same_to_200_clients() {
        remote::two_servers_answer_the_same_to_200_clients(&Hoist::sled());
    }

    #[test]
    fn a_viewer_reads_and_is_refused_changes() {
        api_auth::a_viewer_reads_and_is_refused_changes(&Hoist::sled());
    }

    #[test]
    fn the_event_stream_follows_and_resumes() {
        api_auth::the_event_stream_follows_and_resumes(&Hoist::sled());
    }

    #[test]
    fn sigterm_lets_a_request_in_flight_finish() {
        api_auth::sigterm_lets_a_request_in_flight_finish(&Hoist::sled());
    }

    // issue 13
    #[test]
    fn web_ui_in_a_real_browser() {
        web::the_web_ui_in_a_real_browser(&Hoist::sled());
    }

    #[test]
    fn web_an_expired_session_goes_back_to_sign_in() {
        web::an_expired_session_goes_back_to_sign_in(&Hoist::sled());
    }

    // issue 16
    #[test]
    fn pins_rollbacks_and_forced_promotion() {
        pipelines::pins_rollbacks_and_forced_promotion(&Hoist::sled());
    }

    #[test]
    fn rollback_to_last_healthy() {
        pipelines::rollback_to_last_healthy(&Hoist::sled());
    }

    #[test]
    fn two_serves_auto_promote_once() {
        pipelines::two_serves_auto_promote_once(&Hoist::sled());
    }

    #[test]
    fn drift_of_a_kube_target() {
        pipelines::drift_of_a_kube_target(&Hoist::sled());
    }

    #[test]
    fn a_verification_gates_auto_promotion() {
        pipelines::a_verification_gates_auto_promotion(&Hoist::sled());
    }

    #[test]
    fn pipelines_through_the_server() {
        pipelines::pipelines_through_the_server(&Hoist::sled());
    }
}

#[test]
fn kube_standin_rejects_what_a_real_api_server_rejects() {
    kube::standin_rejects_what_a_real_api_server_rejects();
}

mod nats {
    use super::*;

    #[test]
    fn hooks_deliveries_are_signed_retried_in_order_and_logged() {
        let (_server, h) = nats();
        subscribers::deliveries_are_signed_retried_in_order_and_logged(&h);
    }

    #[test]
    fn hooks_serve_killed_between_send_and_record_sends_again_with_the_same_id() {
        let (_server, h) = nats();
        subscribers::a_serve_killed_between_send_and_record_sends_again_with_the_same_id(&h);
    }

    #[test]
    fn hooks_bad_input_is_refused_and_nothing_appended() {
        let (_server, h) = nats();
        subscribers::bad_hooks_are_refused_and_nothing_appended(&h);
    }

    #[test]
    fn hooks_crash_torture_serve_killed_while_delivering() {
        let (_server, h) = nats();
        subscribers::deliveries_survive_serve_killed_at_random(&h, torture_iterations(15));
    }

    #[test]
    fn hooks_two_serves_on_one_stream_send_each_delivery_once() {
        let (_server, h) = nats();
        subscribers::two_serves_send_each_delivery_once(&h);
    }

    #[test]
    fn only_hoist_serves_nats_user_may_append() {
        nats_auth::only_hoist_serves_user_may_append();
    }

    #[test]
    fn crash_torture_writers_rebuilds_and_serve() {
        let (_server, h) = nats();
        let tally =
            torture::writers_rebuilds_and_serve_survive_sigkill(&h, torture_iterations(100));
        eprintln!("torture (nats): {tally:?}");
    }

    #[test]
    fn a_store_refuses_a_key_other_than_the_one_its_secrets_are_sealed_with() {
        let (_server, h) = nats();
        secrets::a_store_refuses_a_key_other_than_the_one_its_secrets_are_sealed_with(&h);
    }

    #[test]
    fn oversized_input_is_rejected_naming_the_field_and_the_limit() {
        let (_server, h) = nats();
        limits::oversized_input_is_rejected_naming_the_field_and_the_limit(&h);
    }

    #[test]
    fn a_background_process_does_not_hold_the_apply() {
        let (_server, h) = nats();
        hooks::a_background_process_does_not_hold_the_apply(&h);
    }

    #[test]
    fn an_overrunning_hook_is_killed_with_its_group() {
        let (_server, h) = nats();
        hooks::an_overrunning_hook_is_killed_with_its_group(&h);
    }

    #[test]
    fn a_hook_sees_only_the_environment_it_is_given() {
        let (_server, h) = nats();
        hooks::a_hook_sees_only_the_environment_it_is_given(&h);
    }

    #[test]
    fn a_hanging_hook_does_not_delay_another_app() {
        let (_server, h) = nats();
        serve::a_hanging_hook_does_not_delay_another_app(&h);
    }

    #[test]
    fn team_release_life() {
        let (_server, h) = nats();
        scenario::team_release_life(&h);
    }

    #[test]
    fn identities_tokens_and_roles() {
        let ((_server, h), (_other, fresh)) = (nats(), nats());
        access::identities_tokens_and_roles(&h, &fresh);
    }

    #[test]
    fn forged_access_imports_are_refused() {
        let ((_server, from), (_other, to)) = (nats(), nats());
        access::forged_access_imports_are_refused(&from, &to);
    }

    #[test]
    fn bad_input_is_rejected_and_appends_nothing() {
        let (_server, h) = nats();
        errors::bad_input_is_rejected_and_appends_nothing(&h);
    }

    // issue 14
    #[test]
    fn processes_scale_and_domains_from_the_cli() {
        let (_server, h) = nats();
        formation::processes_scale_and_domains_from_the_cli(&h);
    }

    #[test]
    fn serve_applies_a_scale_change_under_the_same_version() {
        let (_server, h) = nats();
        formation::serve_applies_a_scale_change_under_the_same_version(&h);
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
    fn repeated_event_ids_are_refused_with_their_line() {
        let (_server, to) = nats();
        transfer::repeated_event_ids_are_refused_with_their_line(&Hoist::sled(), &to);
    }

    #[test]
    fn impossible_histories_are_refused() {
        let (_server, to) = nats();
        transfer::impossible_histories_are_refused(&Hoist::sled(), &to);
    }

    #[test]
    fn killed_import_leaves_all_or_nothing() {
        // The server's atomic batch limit is 1,000 messages (one per commit).
        transfer::killed_import_leaves_all_or_nothing(
            &|| {
                let (server, to) = nats();
                (Box::new(server), to)
            },
            1000,
            torture_iterations(20) as u32,
        );
    }

    #[test]
    fn an_import_over_the_servers_batch_limit_is_refused_whole() {
        let (_server, to) = nats();
        transfer::an_import_over_the_batch_limit_is_refused_whole(&to, 1001);
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

    // issue 16
    #[test]
    fn pins_rollbacks_and_forced_promotion() {
        let (_server, h) = nats();
        pipelines::pins_rollbacks_and_forced_promotion(&h);
    }

    #[test]
    fn two_serves_auto_promote_once() {
        let (_server, h) = nats();
        pipelines::two_serves_auto_promote_once(&h);
    }

    #[test]
    fn drift_of_a_kube_target() {
        let (_server, h) = nats();
        pipelines::drift_of_a_kube_target(&h);
    }

    #[test]
    fn a_verification_gates_auto_promotion() {
        let (_server, h) = nats();
        pipelines::a_verification_gates_auto_promotion(&h);
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

    // issue 15
    #[test]
    fn two_streams_on_one_server_are_independent_histories() {
        streams::two_streams_on_one_server_are_independent_histories();
    }

    #[test]
    fn a_fresh_cache_starts_from_the_shared_state_model() {
        streams::a_fresh_cache_starts_from_the_shared_state_model();
    }

    #[test]
    fn a_stream_an_earlier_hoist_created_under_another_name_keeps_its_subjects() {
        streams::a_stream_an_earlier_hoist_created_under_another_name_keeps_its_subjects();
    }

    #[test]
    fn a_config_over_the_servers_max_payload_is_rejected() {
        nats_limits::a_config_over_the_servers_max_payload_is_rejected();
    }

    #[test]
    fn an_import_with_a_commit_over_the_servers_max_payload_is_rejected() {
        nats_limits::an_import_with_a_commit_over_the_servers_max_payload_is_rejected();
    }

    #[test]
    fn a_config_over_the_streams_max_msg_size_is_rejected() {
        nats_limits::a_config_over_the_streams_max_msg_size_is_rejected();
    }

    #[test]
    fn an_import_goes_past_a_subject_that_holds_only_quarantined_messages() {
        poison::an_import_goes_past_a_subject_that_holds_only_quarantined_messages();
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

    #[test]
    fn huge_reason_then_status_works() {
        let (_server, h) = nats();
        output::huge_reason_then_status_works(&h);
    }

    #[test]
    fn closed_stdout_ends_quietly() {
        let (_server, h) = nats();
        output::closed_stdout_ends_quietly(&h);
    }

    #[test]
    fn usage_errors_are_one_line() {
        let (_server, h) = nats();
        output::usage_errors_are_one_line(&h);
    }

    #[test]
    fn limits_and_signed_versions() {
        let (_server, h) = nats();
        output::limits_and_signed_versions(&h);
    }

    #[test]
    fn free_text_is_data_not_terminal_control() {
        let (_server, h) = nats();
        output::free_text_is_data_not_terminal_control(&h);
    }

    #[test]
    fn serve_answers_http_and_stops_on_sigterm() {
        let (_server, h) = nats();
        api::serve_answers_http_and_stops_on_sigterm(&h);
    }

    #[test]
    fn an_admin_token_drives_the_api() {
        let (_server, h) = nats();
        api_auth::an_admin_token_drives_the_api(&h);
    }

    #[test]
    fn a_team_works_through_the_server() {
        let (_server, h) = nats();
        remote::a_team_works_through_the_server(&h);
    }

    #[test]
    fn two_servers_answer_the_same_to_200_clients() {
        let (_server, h) = nats();
        remote::two_servers_answer_the_same_to_200_clients(&h);
    }

    #[test]
    fn a_viewer_reads_and_is_refused_changes() {
        let (_server, h) = nats();
        api_auth::a_viewer_reads_and_is_refused_changes(&h);
    }

    #[test]
    fn the_event_stream_follows_and_resumes() {
        let (_server, h) = nats();
        api_auth::the_event_stream_follows_and_resumes(&h);
    }
}

#[test]
fn completions_are_valid_scripts_naming_every_command() {
    manual::completions_are_valid_scripts_naming_every_command();
}

#[test]
fn man_pages_are_roff_naming_the_commands() {
    manual::man_pages_are_roff_naming_the_commands();
}
