//! Metrics without API calls: CloudWatch Embedded Metric Format (EMF). One
//! JSON line on stdout per event; CloudWatch Logs (the Lambda log stream,
//! or the ECS task's `awslogs` driver) extracts the metrics from it. The
//! metrics live in the namespace `bottlesync` with one dimension,
//! `Environment`; other values (run id, sha256) ride along as plain
//! properties that Logs Insights can query but that create no metrics.
//!
//! Whether to emit at all is `FleetConfig::emit_metrics`
//! (`BOTTLESYNC_METRICS`); [`Metrics::emit`] checks it, [`emit`] does not.

use std::io::Write;

use chrono::Utc;
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "bottlesync";
/// The one dimension every metric has.
pub const DIMENSION: &str = "Environment";

/// The CloudWatch units the fleet uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Seconds,
    Milliseconds,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One EMF line (without the newline): the metrics whose values are finite,
/// under `environment`, with `properties` as plain members. A property
/// named like a metric, `_aws` or `Environment` is left out. `None` when no
/// metric is left to report.
pub fn render(
    environment: &str,
    metrics: &[(&str, f64, Unit)],
    properties: &[(&str, &str)],
    timestamp_ms: i64,
) -> Option<String> {
    let metrics: Vec<_> = metrics
        .iter()
        .filter(|(name, value, _)| {
            value.is_finite() && !name.is_empty() && *name != "_aws" && *name != DIMENSION
        })
        .collect();
    if metrics.is_empty() {
        return None;
    }
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
        .collect();
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    line.insert(DIMENSION.into(), Value::from(environment));
    for (name, value) in properties {
        if !line.contains_key(*name) && !metrics.iter().any(|(metric, _, _)| metric == name) {
            line.insert((*name).to_string(), Value::from(*value));
        }
    }
    for (name, value, _) in metrics {
        line.insert((*name).to_string(), number(*value));
    }
    Some(Value::Object(line).to_string())
}

/// Whole numbers as JSON integers (`1`, not `1.0`).
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

/// Prints one EMF line to stdout, now. Never fails: a closed stdout loses
/// the metrics, not the work.
pub fn emit(environment: &str, metrics: &[(&str, f64, Unit)], properties: &[(&str, &str)]) {
    let Some(line) = render(
        environment,
        metrics,
        properties,
        Utc::now().timestamp_millis(),
    ) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// [`emit`] under the configured environment, when metrics are on.
/// Where a use case's metrics go: the environment they are dimensioned by,
/// and whether to emit at all (`BOTTLESYNC_METRICS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub environment: String,
    pub enabled: bool,
}

impl Metrics {
    /// One EMF line, when enabled.
    pub fn emit(&self, metrics: &[(&str, f64, Unit)], properties: &[(&str, &str)]) {
        if self.enabled {
            emit(&self.environment, metrics, properties);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_in_embedded_metric_format() {
        let line = render(
            "prod",
            &[
                ("BottlesStored", 1.0, Unit::Count),
                ("BytesStored", 347_618.0, Unit::Bytes),
                ("DownloadSeconds", 1.25, Unit::Seconds),
            ],
            &[("run_id", "20261129T000000Z-ab12"), ("sha256", "ab")],
            1_764_400_000_123,
        )
        .unwrap();
        assert!(!line.contains('\n'));
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            json!({
                "_aws": {
                    "Timestamp": 1_764_400_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "bottlesync",
                        "Dimensions": [["Environment"]],
                        "Metrics": [
                            {"Name": "BottlesStored", "Unit": "Count"},
                            {"Name": "BytesStored", "Unit": "Bytes"},
                            {"Name": "DownloadSeconds", "Unit": "Seconds"},
                        ],
                    }],
                },
                "Environment": "prod",
                "BottlesStored": 1,
                "BytesStored": 347_618,
                "DownloadSeconds": 1.25,
                "run_id": "20261129T000000Z-ab12",
                "sha256": "ab",
            })
        );
        // Whole numbers are integers in the text, too.
        assert!(line.contains("\"BottlesStored\":1,") || line.contains("\"BottlesStored\":1}"));
    }

    #[test]
    fn metrics_win_over_properties_and_bad_values_are_left_out() {
        let line = render(
            "test",
            &[
                ("BottlesPlanned", 3.0, Unit::Count),
                ("Broken", f64::NAN, Unit::Count),
                ("Environment", 1.0, Unit::Count),
            ],
            &[
                ("BottlesPlanned", "x"),
                ("Environment", "other"),
                ("_aws", "x"),
                ("route", "ecs"),
            ],
            0,
        )
        .unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["BottlesPlanned"], 3);
        assert_eq!(value["Environment"], "test");
        assert_eq!(value["route"], "ecs");
        assert!(value.get("Broken").is_none());
        let names: Vec<&str> = value["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["BottlesPlanned"]);
        assert_eq!(
            render("test", &[("Broken", f64::INFINITY, Unit::Count)], &[], 0),
            None
        );
        assert_eq!(render("test", &[], &[("run_id", "r")], 0), None);
    }
}
