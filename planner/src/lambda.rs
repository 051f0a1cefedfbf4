//! The planner Lambda's event: an EventBridge schedule (plan with the
//! settings), a manual invocation `{"source": "manual", ...overrides}`
//! whose overrides are those of `FleetPlanRequest` (tags, formulae,
//! with_deps, include_disabled, date, dry_run), or the reconcile schedule's
//! constant `{"kind": "reconcile"}`.

use bottlesync_core::{Error, Result};
use serde_json::Value;

use crate::fleet::{FleetPlanRequest, FleetPlanner, emit_plan_metrics};

/// What one invocation asks for.
#[derive(Debug)]
pub enum PlannerEvent {
    Plan(FleetPlanRequest),
    /// Settle stalled and abandoned runs (`bottlesync reconcile`).
    Reconcile,
}

pub fn planner_event(event: &Value) -> Result<PlannerEvent> {
    match event.get("kind") {
        None => request_from_event(event).map(PlannerEvent::Plan),
        Some(Value::String(kind)) if kind == "reconcile" => {
            match event.as_object().map(|fields| fields.len()) {
                Some(1) => Ok(PlannerEvent::Reconcile),
                _ => Err(Error::config(
                    "event",
                    "a reconcile event has no other fields than \"kind\"",
                )),
            }
        }
        Some(other) => Err(Error::config(
            "event",
            format!("unknown kind {other} (expected \"reconcile\", or no kind to plan)"),
        )),
    }
}

/// The handler: plans a run or reconciles, and returns what it did.
/// `owner` names this invocation (its request id).
pub async fn handle_planner_event(
    planner: &FleetPlanner,
    event: &Value,
    owner: &str,
) -> Result<Value> {
    match planner_event(event)? {
        PlannerEvent::Plan(request) => {
            let outcome = planner.plan_run(&request, owner).await?;
            emit_plan_metrics(&planner.reconciler.finisher.metrics, &outcome);
            Ok(serde_json::to_value(outcome).expect("outcomes serialise"))
        }
        PlannerEvent::Reconcile => {
            let report = planner.reconciler.reconcile(owner).await?.into_result()?;
            Ok(serde_json::to_value(report).expect("reports serialise"))
        }
    }
}

pub fn request_from_event(event: &Value) -> Result<FleetPlanRequest> {
    let bad = |problem: String| Error::config("event", problem);
    let Value::Object(fields) = event else {
        return Err(bad("is not a JSON object".into()));
    };
    match fields.get("source").and_then(Value::as_str) {
        Some("manual") => {
            let mut overrides = fields.clone();
            overrides.remove("source");
            serde_json::from_value(Value::Object(overrides))
                .map_err(|e| bad(format!("manual invocation: {e}")))
        }
        // EventBridge schedules say `aws.events`; anything else is refused
        // rather than guessed at.
        Some("aws.events") | Some("aws.scheduler") => Ok(FleetPlanRequest::default()),
        other => Err(bad(format!(
            "unknown source {other:?} (expected aws.events or manual)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schedule_and_manual_events() {
        let scheduled =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(!request_from_event(&scheduled).unwrap().dry_run);
        let manual = json!({"source": "manual", "tags": "arm64_tahoe", "formulae": ["wget"], "dry_run": true});
        let request = request_from_event(&manual).unwrap();
        assert_eq!(request.tags.as_deref(), Some("arm64_tahoe"));
        assert_eq!(request.formulae, ["wget"]);
        assert!(request.dry_run);
        assert!(
            request_from_event(&json!({"source": "manual", "tgas": "x"}))
                .unwrap_err()
                .to_string()
                .contains("tgas")
        );
        assert!(request_from_event(&json!({"source": "elsewhere"})).is_err());
        assert!(request_from_event(&json!([1])).is_err());
    }

    #[test]
    fn reconcile_events() {
        assert!(matches!(
            planner_event(&json!({"kind": "reconcile"})).unwrap(),
            PlannerEvent::Reconcile
        ));
        assert!(matches!(
            planner_event(&json!({"source": "aws.events"})).unwrap(),
            PlannerEvent::Plan(_)
        ));
        let unknown = planner_event(&json!({"kind": "replan"})).unwrap_err();
        assert!(unknown.to_string().contains("replan"), "{unknown}");
        assert!(planner_event(&json!({"kind": "reconcile", "dry_run": true})).is_err());
    }
}
