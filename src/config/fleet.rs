//! The fleet's flags and `BOTTLESYNC_*` variables (clap), in three groups,
//! turned into the typed `FleetConfig`: each group checks and applies its
//! own settings.

use bottlesync_core::Error;
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_core::model::location::Location;

pub use super::fleet_plan::FleetPlanArgs;
pub use super::fleet_stack::FleetStackArgs;
pub use super::fleet_tuning::FleetTuningArgs;
use super::resources::set;

/// Every fleet setting: the same for `plan`, `work`, the operator commands
/// and (from the environment alone) the Lambdas.
#[derive(clap::Args, Clone, Debug)]
pub struct FleetArgs {
    #[command(flatten)]
    pub stack: FleetStackArgs,
    #[command(flatten)]
    pub plan: FleetPlanArgs,
    #[command(flatten)]
    pub tuning: FleetTuningArgs,
}

impl FleetArgs {
    /// The fleet's settings, checked; bucket and ledger table are always
    /// required. Callers then `require_*` what their role needs.
    pub fn config(self) -> Result<FleetConfig, Error> {
        let bucket = set(&self.stack.bucket)
            .ok_or_else(|| Error::config("BOTTLESYNC_BUCKET", "is not set"))?;
        Location::parse("BOTTLESYNC_BUCKET", &format!("s3://{bucket}"), false)?;
        let ledger_table = set(&self.stack.ledger_table)
            .ok_or_else(|| Error::config("BOTTLESYNC_LEDGER_TABLE", "is not set"))?;
        let config = FleetConfig::new(bucket, ledger_table);
        let config = self.stack.apply(config)?;
        let config = self.plan.apply(config)?;
        self.tuning.apply(config)
    }
}
