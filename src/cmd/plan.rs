//! `bottlesync plan`: what the planner Lambda does, from the command line.

use std::process::ExitCode;

use bottlesync_planner::fleet::FleetPlanRequest;
use bottlesync_worker::consumer::Consumer;

use super::{adapters, finish};
use crate::cli::PlanArgs;

pub async fn run(args: PlanArgs) -> ExitCode {
    finish(
        async {
            let planner = adapters(&args.fleet).await?.planner();
            let request = FleetPlanRequest {
                date: args.date,
                dry_run: args.dry_run,
                tags: None,
                formulae: args.formulae.clone(),
                with_deps: args.with_deps,
                linux_host_formulae: Some(args.linux_host_formulae),
                include_disabled: args.include_disabled,
            };
            let outcome = planner
                .plan_run(&request, &Consumer::default_worker_id())
                .await?;
            Ok(serde_json::to_value(outcome).expect("serialises"))
        }
        .await,
    )
}
