//! The outside systems the fleet talks to, built once from `FleetConfig`
//! (by `bottlesync_adapters::wiring`): the mirror store, the ledger, the
//! queues, the registry and the notifier. The Lambda shells, the ECS loop
//! and the CLI all start from this.

use std::sync::Arc;

use crate::fleet_config::FleetConfig;
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
