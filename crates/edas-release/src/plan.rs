//! The release planner: target replicas + strategy → pipelines (batches) with instance counts.
//!
//! Pure arithmetic, no state. A strategy that cannot be honoured (it would leave a batch empty) is
//! refused with a [`PlanError`] that names the offending field, never silently reshaped.

use serde::{Deserialize, Serialize};

/// How the instances of a release are split into batches (EDAS `UpdateStrategy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// No `UpdateStrategy`: everything in one batch.
    Single,
    /// `BatchUpdate`: `batches` batches sharing all instances.
    Batch {
        /// `batchUpdate.batch`.
        batches: u32,
        /// `batchUpdate.releaseType` (+ `batchWaitTime`).
        release: Release,
    },
    /// `GrayBatchUpdate`: a gray batch of `gray` instances, then `batches` batches sharing the rest.
    GrayBatch {
        /// `grayUpdate.gray`.
        gray: u32,
        /// `batchUpdate.batch`.
        batches: u32,
        /// `batchUpdate.releaseType` (+ `batchWaitTime`).
        release: Release,
    },
}

/// What happens between two batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// `releaseType: auto`: wait `wait_minutes` (`batchUpdate.batchWaitTime`, minutes), then start
    /// the next batch; 0 starts it at once.
    Auto {
        /// Minutes between the end of a batch and the start of the next.
        wait_minutes: u32,
    },
    /// `releaseType: manual`: wait for ContinuePipeline with `Confirm=true`.
    Manual,
}

/// Whether a planned batch is the gray (canary) batch or a regular one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// The first batch of a GrayBatchUpdate.
    Gray,
    /// Any other batch.
    Regular,
}

/// One planned batch: how many instances of the new revision it adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBatch {
    /// Gray or regular.
    pub kind: BatchKind,
    /// Instances this batch adds (0 only in the single batch of a release to zero replicas).
    pub size: u32,
}

/// The batches of a release. Built only by [`plan`], so its invariants hold: the sizes sum to
/// `replicas`, there is at least one batch, and no batch is empty unless `replicas` is 0 (then
/// there is exactly one batch, which scales to zero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    replicas: u32,
    release: Release,
    batches: Vec<PlannedBatch>,
}

impl Plan {
    /// The target replica count of the release.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// What happens between batches (a single-batch plan reports `Auto { wait_minutes: 0 }`).
    pub fn release(&self) -> Release {
        self.release
    }

    /// The batches, in execution order.
    pub fn batches(&self) -> &[PlannedBatch] {
        &self.batches
    }

    /// Checks the invariants [`plan`] establishes (a deserialized plan may come from bad data).
    pub(crate) fn check(&self) -> Result<(), String> {
        let sum: u64 = self.batches.iter().map(|b| u64::from(b.size)).sum();
        if self.batches.is_empty() {
            return Err("no batches".to_string());
        }
        if sum != u64::from(self.replicas) {
            return Err(format!(
                "batch sizes add up to {sum}, not {}",
                self.replicas
            ));
        }
        if self.replicas > 0 && self.batches.iter().any(|b| b.size == 0) {
            return Err("an empty batch".to_string());
        }
        if self.replicas == 0 && self.batches.len() != 1 {
            return Err("a release to zero replicas has exactly one batch".to_string());
        }
        Ok(())
    }
}

/// Why a strategy cannot be planned for a replica count. Each variant names the EDAS field at fault
/// ([`PlanError::field`]) so the API can answer with a parameter error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `batchUpdate.batch` is 0.
    #[error("UpdateStrategy.batchUpdate.batch must be at least 1, got 0")]
    NoBatches,
    /// `grayUpdate.gray` is 0.
    #[error("UpdateStrategy.grayUpdate.gray must be at least 1 for a GrayBatchUpdate, got 0")]
    NoGray,
    /// More batches than instances to share among them.
    #[error(
        "UpdateStrategy.batchUpdate.batch is {batches} but only {instances} instance(s) remain to \
         release after the gray batch, so a batch would be empty"
    )]
    TooManyBatches {
        /// Requested batches.
        batches: u32,
        /// Instances left for the regular batches.
        instances: u32,
    },
    /// The gray batch would hold every instance (or more).
    #[error(
        "UpdateStrategy.grayUpdate.gray is {gray} but the application has {replicas} replica(s); \
         gray must be smaller than Replicas so regular batches follow"
    )]
    GrayTooLarge {
        /// Requested gray instances.
        gray: u32,
        /// Target replicas.
        replicas: u32,
    },
    /// A batched strategy for a release to zero replicas.
    #[error(
        "Replicas is 0, so there is nothing to release in batches; use no UpdateStrategy \
         (a single batch that scales to zero)"
    )]
    NothingToBatch,
}

impl PlanError {
    /// The EDAS field this error is about.
    pub fn field(&self) -> &'static str {
        match self {
            PlanError::NoBatches | PlanError::TooManyBatches { .. } => {
                "UpdateStrategy.batchUpdate.batch"
            }
            PlanError::NoGray | PlanError::GrayTooLarge { .. } => "UpdateStrategy.grayUpdate.gray",
            PlanError::NothingToBatch => "Replicas",
        }
    }
}

/// Plans a release of `replicas` instances with `strategy`.
///
/// Regular batches share their instances as evenly as possible; when the count does not divide,
/// the remainder goes to the LATER batches (5 in 2 → 2, 3), so the first batches, which carry the
/// most risk, are the smallest.
pub fn plan(replicas: u32, strategy: &Strategy) -> Result<Plan, PlanError> {
    let single_release = Release::Auto { wait_minutes: 0 };
    match *strategy {
        Strategy::Single => Ok(Plan {
            replicas,
            release: single_release,
            batches: vec![PlannedBatch {
                kind: BatchKind::Regular,
                size: replicas,
            }],
        }),
        Strategy::Batch { batches, release } => {
            if batches == 0 {
                return Err(PlanError::NoBatches);
            }
            if replicas == 0 {
                return Err(PlanError::NothingToBatch);
            }
            Ok(Plan {
                replicas,
                release,
                batches: split(replicas, batches)?,
            })
        }
        Strategy::GrayBatch {
            gray,
            batches,
            release,
        } => {
            if batches == 0 {
                return Err(PlanError::NoBatches);
            }
            if gray == 0 {
                return Err(PlanError::NoGray);
            }
            if replicas == 0 {
                return Err(PlanError::NothingToBatch);
            }
            if gray >= replicas {
                return Err(PlanError::GrayTooLarge { gray, replicas });
            }
            let mut all = vec![PlannedBatch {
                kind: BatchKind::Gray,
                size: gray,
            }];
            all.extend(split(replicas - gray, batches)?);
            Ok(Plan {
                replicas,
                release,
                batches: all,
            })
        }
    }
}

/// Splits `instances` (> 0) into `batches` (> 0) non-empty regular batches, remainder last.
fn split(instances: u32, batches: u32) -> Result<Vec<PlannedBatch>, PlanError> {
    if batches > instances {
        return Err(PlanError::TooManyBatches { batches, instances });
    }
    let base = instances / batches;
    let extra = instances % batches;
    Ok((0..batches)
        .map(|i| PlannedBatch {
            kind: BatchKind::Regular,
            size: base + u32::from(i >= batches - extra),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    fn sizes(plan: &Plan) -> Vec<u32> {
        plan.batches().iter().map(|b| b.size).collect()
    }

    const AUTO: Release = Release::Auto { wait_minutes: 1 };

    #[test]
    fn gray_then_batches_with_remainder_last() {
        let p = plan(
            6,
            &Strategy::GrayBatch {
                gray: 1,
                batches: 2,
                release: Release::Manual,
            },
        )
        .unwrap();
        assert_eq!(sizes(&p), vec![1, 2, 3]);
        assert_eq!(p.batches()[0].kind, BatchKind::Gray);
        assert_eq!(p.batches()[1].kind, BatchKind::Regular);
        assert_eq!(p.release(), Release::Manual);
        assert_eq!(p.replicas(), 6);
    }

    #[test]
    fn batch_update_splits_evenly_remainder_later() {
        let p = plan(
            7,
            &Strategy::Batch {
                batches: 3,
                release: AUTO,
            },
        )
        .unwrap();
        assert_eq!(sizes(&p), vec![2, 2, 3]);
        let p = plan(
            8,
            &Strategy::Batch {
                batches: 3,
                release: AUTO,
            },
        )
        .unwrap();
        assert_eq!(sizes(&p), vec![2, 3, 3]);
    }

    #[test]
    fn single_is_one_batch_even_for_zero() {
        assert_eq!(sizes(&plan(4, &Strategy::Single).unwrap()), vec![4]);
        assert_eq!(sizes(&plan(0, &Strategy::Single).unwrap()), vec![0]);
    }

    #[test]
    fn refusals_name_the_field() {
        let e = plan(
            2,
            &Strategy::Batch {
                batches: 3,
                release: AUTO,
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            PlanError::TooManyBatches {
                batches: 3,
                instances: 2
            }
        );
        assert_eq!(e.field(), "UpdateStrategy.batchUpdate.batch");
        assert!(e.to_string().contains("would be empty"));

        let e = plan(
            3,
            &Strategy::Batch {
                batches: 0,
                release: AUTO,
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), "UpdateStrategy.batchUpdate.batch");

        let gray = |gray, batches| Strategy::GrayBatch {
            gray,
            batches,
            release: AUTO,
        };
        let e = plan(3, &gray(3, 1)).unwrap_err();
        assert_eq!(
            e,
            PlanError::GrayTooLarge {
                gray: 3,
                replicas: 3
            }
        );
        assert_eq!(e.field(), "UpdateStrategy.grayUpdate.gray");
        assert_eq!(
            plan(3, &gray(0, 1)).unwrap_err().field(),
            "UpdateStrategy.grayUpdate.gray"
        );
        assert_eq!(
            plan(3, &gray(1, 3)).unwrap_err(),
            PlanError::TooManyBatches {
                batches: 3,
                instances: 2
            }
        );
        assert_eq!(plan(0, &gray(1, 1)).unwrap_err().field(), "Replicas");
        assert_eq!(
            plan(
                0,
                &Strategy::Batch {
                    batches: 1,
                    release: AUTO
                }
            )
            .unwrap_err(),
            PlanError::NothingToBatch
        );
    }

    fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
        let release = prop_oneof![
            Just(Release::Manual),
            (0u32..5).prop_map(|wait_minutes| Release::Auto { wait_minutes })
        ];
        prop_oneof![
            Just(Strategy::Single),
            (0u32..12, release.clone())
                .prop_map(|(batches, release)| Strategy::Batch { batches, release }),
            (0u32..12, 0u32..12, release).prop_map(|(gray, batches, release)| {
                Strategy::GrayBatch {
                    gray,
                    batches,
                    release,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn plans_hold_their_invariants(replicas in 0u32..40, strategy in strategy()) {
            match plan(replicas, &strategy) {
                Ok(p) => {
                    let total: u32 = p.batches().iter().map(|b| b.size).sum();
                    prop_assert_eq!(total, replicas);
                    prop_assert!(!p.batches().is_empty());
                    if replicas > 0 {
                        prop_assert!(p.batches().iter().all(|b| b.size > 0), "empty batch in {:?}", p);
                    } else {
                        prop_assert_eq!(p.batches().len(), 1);
                    }
                    let regular: Vec<u32> = p
                        .batches()
                        .iter()
                        .filter(|b| b.kind == BatchKind::Regular)
                        .map(|b| b.size)
                        .collect();
                    // Even split, remainder later: non-decreasing and at most one apart.
                    prop_assert!(regular.windows(2).all(|w| w[0] <= w[1]));
                    prop_assert!(regular.first().zip(regular.last()).is_none_or(|(a, b)| b - a <= 1));
                    match strategy {
                        Strategy::GrayBatch { gray, batches, .. } => {
                            prop_assert!(gray < replicas);
                            prop_assert_eq!(p.batches()[0], PlannedBatch { kind: BatchKind::Gray, size: gray });
                            prop_assert_eq!(regular.len() as u32, batches);
                        }
                        Strategy::Batch { batches, .. } => prop_assert_eq!(p.batches().len() as u32, batches),
                        Strategy::Single => prop_assert_eq!(p.batches().len(), 1),
                    }
                }
                Err(e) => {
                    // Refused only when the strategy really cannot be honoured.
                    let feasible = match strategy {
                        Strategy::Single => true,
                        Strategy::Batch { batches, .. } => batches >= 1 && batches <= replicas,
                        Strategy::GrayBatch { gray, batches, .. } => {
                            gray >= 1 && batches >= 1 && gray < replicas && batches <= replicas - gray
                        }
                    };
                    prop_assert!(!feasible, "refused a feasible strategy: {}", e);
                    prop_assert!(!e.field().is_empty());
                }
            }
        }
    }
}
