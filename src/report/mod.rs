//! What the commands show a person: `sync`'s plan and summary (text on
//! stdout, JSON with `--report`) and `status`'s text.

mod portable_ruby;
mod publication;
mod status;
mod sync_plan;
mod sync_summary;

pub use portable_ruby::{add_portable_ruby, portable_ruby_lines};
pub use status::print_status;
pub use sync_plan::{SyncReport, write_report};
