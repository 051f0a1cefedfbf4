//! The right to send an unsealed run's messages (the planner's, or a `dlq
//! replay`'s), renewed as the sender works: a sender that dies leaves the
//! run to be resumed by the reconcile once the lease runs out, and a sender
//! that finds its lease taken over stops, leaving the run (and its seal) to
//! the resumer.

use std::time::{Duration, Instant};

use bottlesync_core::services::FleetServices;
use bottlesync_core::{Error, Result};
use chrono::{DateTime, Utc};

pub(crate) struct PlanningLease<'a> {
    services: &'a FleetServices,
    run_id: &'a str,
    owner: &'a str,
    renewed: Instant,
}

impl<'a> PlanningLease<'a> {
    /// The lease of a run opened now by `owner` (whose record says
    /// `planning_until = PlanningLease::until(now, lease)`).
    pub(crate) fn new(services: &'a FleetServices, run_id: &'a str, owner: &'a str) -> Self {
        PlanningLease {
            services,
            run_id,
            owner,
            renewed: Instant::now(),
        }
    }

    /// When a lease taken at `from` runs out.
    pub(crate) fn until(from: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
        from + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
    }

    /// Renews the lease when a third of it has passed. An error when the
    /// run was taken over (this sender was too slow and the reconcile
    /// resumed it): the resumer sends the rest.
    pub(crate) async fn keep(&mut self) -> Result<()> {
        if self.renewed.elapsed() < self.services.config.planning_lease / 3 {
            return Ok(());
        }
        self.confirm().await
    }

    /// Renews the lease now: right before sealing, so that only its holder
    /// seals (a fresh lease cannot be taken over before the seal lands).
    pub(crate) async fn confirm(&mut self) -> Result<()> {
        let lease = self.services.config.planning_lease;
        if !self
            .services
            .ledger
            .hold_planning(self.run_id, self.owner, lease)
            .await?
        {
            return Err(Error::ledger(
                format!("run {}", self.run_id),
                "the planning lease was taken over (this sender was too slow); the run is resumed by whoever took it",
            ));
        }
        self.renewed = Instant::now();
        Ok(())
    }
}
