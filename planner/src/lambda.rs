//! The planner Lambda's event: an EventBridge schedule (plan with the
//! settings), or a manual invocation `{"source": "manual", ...overrides}`
//! whose overrides are those of `FleetPlanRequest` (tags, formulae,
//! with_deps, include_disabled, date, dry_run).

use bottlesync_core::{Error, Result};
use serde_json::Value;

use crate::fleet::FleetPlanRequest;

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
}
