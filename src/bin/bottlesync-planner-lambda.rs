//! The planner Lambda: EventBridge (weekly) or a manual invocation runs
//! `plan_fleet_run`, the reconcile schedule's `{"kind": "reconcile"}` runs
//! the reconcile; either returns what it did. Settings come from
//! `BOTTLESYNC_*`.

use bottlesync::{config, telemetry};
use bottlesync_adapters::wiring::aws_services;
use bottlesync_core::services::FleetServices;
use bottlesync_planner::lambda::handle_planner_event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let services = aws_services(config::fleet_config_from_env(env!("CARGO_BIN_NAME"))?).await?;
    let services = &services;
    run(service_fn(move |event| handler(services, event))).await
}

async fn handler(services: &FleetServices, event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(handle_planner_event(services, &event.payload, &event.context.request_id).await?)
}
