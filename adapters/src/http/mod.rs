//! HTTP adapters: the Homebrew registry and API, the Slack webhook, the
//! ECS agent.

pub mod ecs_agent;
pub mod registry;
pub mod slack;
