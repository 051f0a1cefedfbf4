//! The planner Lambda: EventBridge (weekly) or a manual invocation runs
//! `plan_fleet_run` and returns its outcome. Settings come from `BOTTLESYNC_*`.

use std::sync::Arc;

use bottlesync_core::fleet_config::{FleetArgs, FleetConfig};
use bottlesync_core::services::FleetServices;
use bottlesync_planner::fleet::{emit_plan_metrics, plan_fleet_run};
use bottlesync_planner::lambda::request_from_event;
use clap::Parser;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    fleet: FleetArgs,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_target(false)
        .init();
    let settings = Settings::parse_from(["bottlesync-planner-lambda"]);
    let services = Arc::new(FleetServices::aws(FleetConfig::from_args(&settings.fleet)?).await?);
    run(service_fn(move |event: LambdaEvent<Value>| {
        let services = services.clone();
        async move {
            let request = request_from_event(&event.payload)?;
            let outcome = plan_fleet_run(&services, &request, &event.context.request_id).await?;
            emit_plan_metrics(&services.config, &outcome);
            Ok::<_, Error>(serde_json::to_value(outcome)?)
        }
    }))
    .await
}
