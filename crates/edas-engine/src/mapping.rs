//! From the application model's release settings to the state machine's plan and settings, and
//! the EDAS change-order type vocabulary.

use edas_release::{ChangeKind, LosslessStart, Release, Strategy};
use edas_spec::release::{ReleaseType, StrategyKind, UpdateStrategy};
use edas_spec::{AppSpec, Operation};

/// The state machine's batching for an `UpdateStrategy` (absent: one batch).
pub fn strategy(s: Option<&UpdateStrategy>) -> Strategy {
    let Some(s) = s else { return Strategy::Single };
    let release = match s.release_type {
        ReleaseType::Auto => Release::Auto {
            wait_minutes: s.batch_wait_minutes,
        },
        ReleaseType::Manual => Release::Manual,
    };
    match s.kind {
        StrategyKind::GrayBatchUpdate if s.gray > 0 => Strategy::GrayBatch {
            gray: s.gray,
            batches: s.batches,
            release,
        },
        _ => Strategy::Batch {
            batches: s.batches,
            release,
        },
    }
}

/// Pacing of every batch of a release of `spec`.
pub fn settings(
    spec: &AppSpec,
    release: &edas_spec::ReleaseSettings,
) -> edas_release::ReleaseSettings {
    let l = &spec.lossless;
    edas_release::ReleaseSettings {
        batch_timeout_seconds: release.effective_batch_timeout_seconds(),
        min_ready_seconds: spec.min_ready_seconds,
        lossless: l.enabled.then_some(LosslessStart {
            delay_seconds: l.delay_seconds,
            warmup_seconds: l.warmup_seconds,
            aligned: l.aligned,
            related: l.related,
        }),
    }
}

/// The change kind of an operation.
pub fn kind(op: Operation) -> ChangeKind {
    match op {
        Operation::InsertK8sApplication => ChangeKind::Create,
        Operation::DeployK8sApplication => ChangeKind::Deploy,
        Operation::UpdateK8sApplicationConfig => ChangeKind::UpdateConfig,
        Operation::ScaleK8sApplication => ChangeKind::Scale,
        Operation::RestartK8sApplication => ChangeKind::Restart,
        Operation::StartK8sApplication => ChangeKind::Start,
        Operation::StopK8sApplication => ChangeKind::Stop,
        Operation::DeleteK8sApplication => ChangeKind::Delete,
        // A Service is part of the application's configuration; EDAS publishes no CoType of
        // its own for Service changes.
        Operation::CreateK8sService | Operation::UpdateK8sService | Operation::DeleteK8sService => {
            ChangeKind::UpdateConfig
        }
    }
}

/// EDAS `CoTypeCode` and `CoType` of a change kind (EDAS publishes only `CoDeploy`; the others
/// follow its naming).
pub fn co_type(kind: ChangeKind) -> (&'static str, &'static str) {
    match kind {
        ChangeKind::Create => ("CoCreateApp", "Create Application"),
        ChangeKind::Deploy => ("CoDeploy", "Deploy Application"),
        ChangeKind::UpdateConfig => ("CoUpdateConfig", "Update Application Configuration"),
        ChangeKind::Scale => ("CoScale", "Scale Application"),
        ChangeKind::Start => ("CoStart", "Start Application"),
        ChangeKind::Stop => ("CoStop", "Stop Application"),
        ChangeKind::Restart => ("CoRestart", "Restart Application"),
        ChangeKind::Rollback => ("CoRollback", "Roll Back Application"),
        ChangeKind::Delete => ("CoDelete", "Delete Application"),
    }
}

/// Whether two specs run the same instances (they differ at most in instance count, stopped
/// state or Services), so a change between them scales instead of replacing instances. Services
/// select instances from outside (as Kubernetes Services select pods by label), so changing
/// one never restarts an instance.
pub fn same_template(a: &AppSpec, b: &AppSpec) -> bool {
    let norm = |s: &AppSpec| AppSpec {
        replicas: 0,
        stopped: false,
        services: Vec::new(),
        ..s.clone()
    };
    norm(a) == norm(b)
}
