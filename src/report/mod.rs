//! What the commands show a person: `sync`'s plan and summary (text on
//! stdout, JSON with `--report`) and `status`'s text.

mod status;
mod sync;

pub use status::print_status;
pub use sync::{SyncReport, write_report};
