//! HTTP adapters: the Homebrew registry and API, the Slack webhook, the
//! ECS agent; and `server`, the mirror served to brew clients (its
//! connections beside it).

mod connections;
pub mod ecs_agent;
mod mirror_dir;
pub mod registry;
pub mod server;
pub mod slack;

pub use connections::ConnectionLimits;
