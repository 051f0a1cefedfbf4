//! The queue each route sends to, for whatever sends new work messages
//! (the fleet planner, the DLQ replay): a route without its queue is a
//! setting error naming the variable, never a silent change of route.

use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::queue::Queue;
use bottlesync_core::services::FleetServices;
use bottlesync_core::{Error, Result};

/// The Lambda and ECS work queues, each when configured.
#[derive(Clone, Copy)]
pub struct WorkQueues<'a> {
    pub lambda: Option<&'a dyn Queue>,
    pub ecs: Option<&'a dyn Queue>,
}

impl<'a> WorkQueues<'a> {
    pub fn of(services: &'a FleetServices) -> Self {
        WorkQueues {
            lambda: services.queue.as_deref(),
            ecs: services.large_queue.as_deref(),
        }
    }

    /// The queue of `route`, or the setting that is missing.
    pub fn get(&self, route: Route) -> Result<&'a dyn Queue> {
        let (queue, setting) = match route {
            Route::Lambda => (self.lambda, "BOTTLESYNC_QUEUE_URL"),
            Route::Ecs => (self.ecs, "BOTTLESYNC_LARGE_QUEUE_URL"),
        };
        queue.ok_or_else(|| Error::config(setting, "is not set"))
    }

    /// Fails, before anything is sent, when one of `routes` has no queue.
    pub fn check(&self, routes: impl IntoIterator<Item = Route>) -> Result<()> {
        let routes: Vec<Route> = routes.into_iter().collect();
        for route in [Route::Ecs, Route::Lambda] {
            if routes.contains(&route) {
                self.get(route)?;
            }
        }
        Ok(())
    }
}
