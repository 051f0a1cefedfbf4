//! The world a load run starts from: a Homebrew stand-in serving a generated
//! catalog of about the requested number of bottles (log-normal sizes), with
//! faults set on a seeded random choice of them, and what the mirror must
//! hold at the end.

use std::collections::BTreeMap;

use bottlesync_loadtest::{
    BottleInfo, Catalog, Fault, SizeModel, StandIn, StandInConfig, installable_tag,
};
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// The clients the mirror is for (`BOTTLESYNC_TAGS`): the three newest macOS
/// releases, as `auto` picks them from the stand-in's tags.
pub const CLIENT_TAGS: [&str; 5] = [
    "arm64_golden_gate",
    "arm64_tahoe",
    "tahoe",
    "arm64_sequoia",
    "sequoia",
];

/// The dated folder of every load run.
pub const DATE: &str = "2026-11-29";

/// Which faults, on what share of the bottles.
#[derive(Clone, Debug, Serialize)]
pub struct FaultMix {
    /// Registry answers 503 twice, then recovers.
    pub status_5xx: f64,
    /// Registry answers 429 with `Retry-After: 1` once.
    pub too_many_requests: f64,
    /// Storage closes the connection halfway through the body once.
    pub truncate: f64,
    /// Storage sends the body at 512 KiB/s.
    pub slow: f64,
    /// This many bottles are always served corrupt: they must end in the DLQ.
    pub corrupt: usize,
}

impl Default for FaultMix {
    fn default() -> Self {
        FaultMix {
            status_5xx: 0.02,
            too_many_requests: 0.01,
            truncate: 0.02,
            slow: 0.01,
            corrupt: 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Status5xx,
    TooManyRequests,
    Truncate,
    Slow,
    Corrupt,
}

impl FaultKind {
    fn fault(self) -> Fault {
        match self {
            FaultKind::Status5xx => Fault::Status {
                code: 503,
                times: 2,
            },
            FaultKind::TooManyRequests => Fault::TooManyRequests {
                retry_after_secs: 1,
                times: 1,
            },
            FaultKind::Truncate => Fault::Truncate { times: 1 },
            FaultKind::Slow => Fault::Slow {
                bytes_per_sec: 512 << 10,
            },
            FaultKind::Corrupt => Fault::Corrupt,
        }
    }

    /// Storage GETs the fault itself adds to a bottle's one download (a
    /// truncated body is resumed with a Range request).
    pub fn extra_downloads(self) -> u64 {
        match self {
            FaultKind::Truncate => 1,
            _ => 0,
        }
    }
}

/// One bottle the run must handle.
#[derive(Clone, Debug)]
pub struct ExpectedBottle {
    pub info: BottleInfo,
    pub fault: Option<FaultKind>,
}

pub struct World {
    pub standin: StandIn,
    /// By sha256.
    pub bottles: BTreeMap<String, ExpectedBottle>,
}

impl World {
    /// The world `options` ask for.
    pub async fn for_options(options: &crate::LoadOptions) -> anyhow::Result<World> {
        World::start(
            options.bottles,
            options.median_bytes,
            options.max_bytes,
            &options.faults,
            options.seed,
        )
        .await
    }

    pub async fn start(
        bottles: usize,
        median_bytes: u64,
        max_bytes: u64,
        faults: &FaultMix,
        seed: u64,
    ) -> anyhow::Result<World> {
        let catalog = catalog_of_about(bottles, median_bytes, max_bytes, seed);
        let standin = StandIn::start(StandInConfig::new(catalog)).await?;
        let mut bottles: BTreeMap<String, ExpectedBottle> = standin
            .expected_mirror(&CLIENT_TAGS, false)
            .into_iter()
            .map(|(sha, info)| (sha, ExpectedBottle { info, fault: None }))
            .collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let corrupt: Vec<String> = bottles
            .keys()
            .cloned()
            .choose_multiple(&mut rng, faults.corrupt);
        for sha in corrupt {
            bottles.get_mut(&sha).expect("chosen from the map").fault = Some(FaultKind::Corrupt);
        }
        let shares = [
            (FaultKind::Status5xx, faults.status_5xx),
            (FaultKind::TooManyRequests, faults.too_many_requests),
            (FaultKind::Truncate, faults.truncate),
            (FaultKind::Slow, faults.slow),
        ];
        for bottle in bottles.values_mut().filter(|b| b.fault.is_none()) {
            let mut roll = rng.random::<f64>();
            for (kind, share) in shares {
                if roll < share {
                    bottle.fault = Some(kind);
                    break;
                }
                roll -= share;
            }
        }
        for (sha, bottle) in &bottles {
            if let Some(kind) = bottle.fault {
                standin.set_fault(sha, kind.fault());
            }
        }
        Ok(World { standin, bottles })
    }

    /// Bytes of the bottles that must end up stored.
    pub fn bytes_to_store(&self) -> u64 {
        self.storable().map(|b| b.info.size).sum()
    }

    pub fn storable(&self) -> impl Iterator<Item = &ExpectedBottle> {
        self.bottles
            .values()
            .filter(|b| b.fault != Some(FaultKind::Corrupt))
    }

    pub fn fault_counts(&self) -> BTreeMap<FaultKind, usize> {
        let mut counts = BTreeMap::new();
        for kind in self.bottles.values().filter_map(|b| b.fault) {
            *counts.entry(kind).or_default() += 1;
        }
        counts
    }
}

/// A generated catalog cut after the formula that brings the mirrored
/// bottles to `bottles` (dependencies only point backwards, so a prefix of
/// the catalog is a valid catalog).
fn catalog_of_about(bottles: usize, median_bytes: u64, max_bytes: u64, seed: u64) -> Catalog {
    let sizes = SizeModel::log_normal(median_bytes, max_bytes);
    let generated = Catalog::generated(bottles.max(1), seed, sizes);
    let mut kept = Vec::new();
    let mut count = 0;
    for formula in generated.formulae() {
        if count >= bottles {
            break;
        }
        if !formula.disabled {
            let tags: Vec<&str> = formula.bottles.iter().map(|b| b.tag.as_str()).collect();
            let mut installed: Vec<&str> = CLIENT_TAGS
                .iter()
                .filter_map(|client| installable_tag(&tags, client))
                .collect();
            installed.sort_unstable();
            installed.dedup();
            count += installed.len();
        }
        kept.push(formula.clone());
    }
    Catalog::from_formulae(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_holds_about_the_requested_bottles() {
        for wanted in [1, 50, 300] {
            let catalog = catalog_of_about(wanted, 1 << 10, 1 << 20, 3);
            let formulae = catalog.formulae().len();
            assert!(formulae >= 1 && formulae <= wanted, "{wanted}: {formulae}");
        }
    }

    #[tokio::test]
    async fn faults_follow_the_mix_and_the_expectation_matches_the_stand_in() {
        let mix = FaultMix {
            corrupt: 4,
            ..FaultMix::default()
        };
        let world = World::start(200, 1 << 10, 64 << 10, &mix, 11)
            .await
            .unwrap();
        // Whole formulae: at most one formula's bottles (<= 5) over the target.
        assert!(
            (200..=205).contains(&world.bottles.len()),
            "{}",
            world.bottles.len()
        );
        assert_eq!(world.fault_counts()[&FaultKind::Corrupt], 4);
        assert_eq!(world.storable().count(), world.bottles.len() - 4);
        let faults = world.standin.faults();
        assert_eq!(
            faults.len(),
            world.bottles.values().filter(|b| b.fault.is_some()).count()
        );
    }
}
