//! HTTP adapters: the Homebrew registry and API, the Slack webhook, the
//! ECS agent; and `server`, the mirror served to brew clients (its
//! connections, TLS certificate and `sendfile` bodies beside it).

mod connections;
pub mod ecs_agent;
mod mirror_dir;
pub mod registry;
mod sendfile;
pub mod server;
pub mod slack;
pub mod tls;

pub use connections::ConnectionLimits;
