//! The planner Lambda: EventBridge (weekly) or a manual invocation runs
//! `plan_fleet_run`, the reconcile schedule's `{"kind": "reconcile"}` runs
//! the reconcile; either returns what it did. Settings come from
//! `BOTTLESYNC_*`.

use std::sync::Arc;

use bottlesync::config::FleetArgs;
use bottlesync_adapters::wiring::aws_services;
use bottlesync_core::fleet_config::FleetConfig;
use bottlesync_planner::lambda::handle_planner_event;
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
    let services =
        Arc::new(aws_services(FleetConfig::from_settings(&settings.fleet.into())?).await?);
    run(service_fn(move |event: LambdaEvent<Value>| {
        let services = services.clone();
        async move {
            Ok::<_, Error>(
                handle_planner_event(&services, &event.payload, &event.context.request_id).await?,
            )
        }
    }))
    .await
}
