//! edas-store's tests against real databases: the conformance suite on SQLite and PostgreSQL,
//! the SQLite-only operations (backup, restore, data directory), and the crash test.

mod catalog;
mod conformance;
mod crash;
mod events;
mod harness;
mod identity_version;
mod ingress;
mod release_policies;
mod scaling;
mod sqlite_only;
mod sweeps;
mod typed;
mod upgrade;

/// The suites the conformance macro runs on both backends.
mod conformance_or_sweeps {
    pub use crate::catalog::*;
    pub use crate::conformance::*;
    pub use crate::events::*;
    pub use crate::identity_version::*;
    pub use crate::ingress::*;
    pub use crate::release_policies::*;
    pub use crate::scaling::*;
    pub use crate::sweeps::*;
    pub use crate::typed::*;
}

/// Generates one test per conformance function and backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = crate::harness::sqlite().await;
                    crate::conformance_or_sweeps::$name(&store).await;
                    store.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(store) = crate::harness::postgres().await else { return };
                    crate::conformance_or_sweeps::$name(&store).await;
                    store.finish().await;
                }
            )*
        }
    };
}

conformance!(
    create_application_is_atomic_and_listed,
    deploy_refuses_a_second_active_change_order,
    concurrent_deploys_have_one_winner,
    transitions_are_compare_and_swap,
    change_orders_are_listed_newest_first,
    audit_is_listed_by_application_and_time,
    leases_are_exclusive_and_expire,
    claims_in_bulk_and_hands_leases_over,
    every_identity_change_moves_the_identity_version,
    concurrent_claimers_never_share_a_change_order,
    secrets_are_encrypted_at_rest,
    users_access_keys_and_policies,
    clusters_and_config_maps,
    config_writes_are_audited_in_the_same_transaction,
    retention_prunes_only_finished_and_old,
    a_newer_schema_is_refused,
    deleting_now_ends_the_active_order_and_leaves_a_sweep,
    a_rollback_is_stored_with_the_transition_or_not_at_all,
    the_creator_is_written_with_the_change_order,
    service_ports_are_indexed_with_the_revision,
    typed_documents_read_back_or_are_corrupt,
    release_events_are_recorded_with_their_transition,
    events_are_pruned_with_their_change_order_once_delivered,
    namespaces_are_stored_and_refused_while_used,
    tags_are_set_replaced_limited_and_removed,
    concurrent_taggers_never_exceed_the_limit,
    base_info_is_kept_beside_the_revisions,
    scaling_rules_are_stored_per_application,
    ingress_rules_are_stored_per_cluster_and_namespace,
    release_policies_are_versioned_and_audited,
);

#[tokio::test]
async fn postgres_backup_is_left_to_pg_dump() {
    let Some(ts) = harness::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let err = ts
        .store
        .backup_to(&dir.path().join("copy"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, edas_store::StoreError::Unsupported { .. }),
        "{err:?}"
    );
    assert_eq!(ts.store.backend_name(), "postgres");
    ts.finish().await;
}
