//! The planner Lambda: EventBridge (weekly) or a manual invocation runs
//! `FleetPlanner::plan_run`, the reconcile schedule's `{"kind": "reconcile"}` runs
//! the reconcile; either returns what it did. Settings come from
//! `BOTTLESYNC_*`.

use bottlesync::{config, telemetry};
use bottlesync_adapters::wiring::aws_adapters;
use bottlesync_planner::fleet::FleetPlanner;
use bottlesync_planner::lambda::handle_planner_event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let planner = aws_adapters(config::fleet_config_from_env(env!("CARGO_BIN_NAME"))?)
        .await?
        .planner();
    let planner = &planner;
    run(service_fn(move |event| handler(planner, event))).await
}

async fn handler(planner: &FleetPlanner, event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(handle_planner_event(planner, &event.payload, &event.context.request_id).await?)
}
