//! Settings from flags and `BOTTLESYNC_*` variables (clap value parsers,
//! `parse`), typed: the fleet's (`fleet*`) into a `FleetConfig`, `sync`'s
//! (`sync*`) into `SyncSettings`.

mod fleet;
mod fleet_plan;
mod fleet_stack;
mod fleet_tuning;
mod parse;
mod resources;
mod setting;
mod sync;
mod sync_args;
mod sync_transfer;

pub use fleet::{FleetArgs, FleetPlanArgs, FleetStackArgs, FleetTuningArgs};
pub use sync::{SyncSettings, store_lease_length};
pub use sync_args::{ProgressMode, SyncArgs, SyncTransferArgs};

use bottlesync_core::Error;
use bottlesync_core::fleet_config::FleetConfig;

/// A Lambda's settings: `BOTTLESYNC_*` only (it has no command line).
pub fn fleet_config_from_env(binary: &str) -> Result<FleetConfig, Error> {
    #[derive(clap::Parser)]
    struct FromEnv {
        #[command(flatten)]
        fleet: FleetArgs,
    }
    // A bad variable is the function's init error, never clap's exit.
    let settings = <FromEnv as clap::Parser>::try_parse_from([binary])
        .map_err(|e| Error::config("environment", e.render().to_string().trim().to_string()))?;
    settings.fleet.config()
}

/// A `--date`: YYYY-MM-DD.
pub fn parse_date_arg(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date YYYY-MM-DD: {e}"))
}
