//! The outside systems the fleet talks to, built once from `FleetConfig`
//! (by `bottlesync_adapters::wiring`): the mirror store, the ledger, the
//! queues, the registry and the notifier. The Lambda shells, the ECS loop
//! and the CLI all start from this.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fleet_config::FleetConfig;
use crate::plan::route::Route;
use crate::ports::capacity::WorkerCapacity;
use crate::ports::documents::Documents;
use crate::ports::fleet_ledger::FleetLedger;
use crate::ports::notifier::Notifier;
use crate::ports::queue::Queue;
use crate::ports::registry::Registry;
use crate::ports::store::BlobStore;
use crate::retry::RetryPolicy;
use crate::run::messages::MessageContext;

#[derive(Clone)]
pub struct FleetServices {
    pub config: FleetConfig,
    pub store: Arc<dyn BlobStore>,
    pub ledger: Arc<dyn FleetLedger>,
    pub registry: Arc<dyn Registry>,
    /// External hash files, wherever they are.
    pub documents: Arc<dyn Documents>,
    pub notifier: Arc<dyn Notifier>,
    pub retry: RetryPolicy,
    /// The Lambda queue, when configured.
    pub queue: Option<Arc<dyn Queue>>,
    pub large_queue: Option<Arc<dyn Queue>>,
    pub dlq: Option<Arc<dyn Queue>>,
    /// The ECS workers, when `BOTTLESYNC_ECS_CLUSTER`/`_SERVICE` are set.
    pub capacity: Option<Arc<dyn WorkerCapacity>>,
}

impl FleetServices {
    pub fn message_context(&self) -> MessageContext {
        MessageContext {
            environment: self.config.environment.clone(),
            mirror: self.config.mirror_location(),
            log_group: self.config.log_group.clone(),
            dlq: self.config.dlq_url.clone(),
        }
    }
}

/// The queue each route sends to, for whatever sends work messages (the
/// fleet planner, the DLQ replay, the reconcile): a route without its queue
/// is a setting error naming the variable, never a silent change of route.
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
