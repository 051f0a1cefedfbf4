//! HTTP adapters: the Homebrew registry and API, the Slack webhook, the
//! ECS agent; and `server`, the mirror served to brew clients.

pub mod ecs_agent;
mod mirror_dir;
pub mod registry;
pub mod server;
pub mod slack;
