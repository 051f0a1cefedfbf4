//! Which workers take a bottle: the Lambda queue or the ECS queue. One
//! `Route` type with its names, and one rule ([`route_for`]) for both the
//! fleet planner and the DLQ replay.

use serde::{Deserialize, Serialize};

/// The queue (and so the kind of worker) a run's messages go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Lambda,
    Ecs,
}

impl Route {
    pub const ALL: [Route; 2] = [Route::Lambda, Route::Ecs];

    /// The stored name (ledger items, JSON, metric dimensions): `lambda`,
    /// `ecs`, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Lambda => "lambda",
            Route::Ecs => "ecs",
        }
    }

    /// The name people read (Slack messages): `Lambda`, `ECS`.
    pub fn label(self) -> &'static str {
        match self {
            Route::Lambda => "Lambda",
            Route::Ecs => "ECS",
        }
    }

    /// Reads a stored name back ([`Route::as_str`]).
    pub fn parse(text: &str) -> Result<Route, String> {
        Route::ALL
            .into_iter()
            .find(|route| route.as_str() == text)
            .ok_or_else(|| format!("unknown route {text:?}"))
    }

    /// A planned run's route: ECS when its estimated bytes reach
    /// `size_threshold_bytes` (`BOTTLESYNC_SIZE_THRESHOLD_GB`).
    pub fn for_run_bytes(bytes: u64, size_threshold_bytes: u64) -> Route {
        if bytes >= size_threshold_bytes {
            Route::Ecs
        } else {
            Route::Lambda
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The route of one bottle of a run going `run`: ECS when the run goes
/// there, or when the bottle is larger than `lambda_max_bottle_bytes`
/// (`BOTTLESYNC_LAMBDA_MAX_BOTTLE_GB`: more than one Lambda invocation
/// can stream).
pub fn route_for(run: Route, bottle_size: u64, lambda_max_bottle_bytes: u64) -> Route {
    if run == Route::Ecs || bottle_size > lambda_max_bottle_bytes {
        Route::Ecs
    } else {
        Route::Lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_match_serde() {
        for route in Route::ALL {
            assert_eq!(Route::parse(route.as_str()), Ok(route));
            assert_eq!(
                serde_json::to_value(route).unwrap(),
                serde_json::Value::from(route.as_str())
            );
        }
        assert_eq!(Route::Ecs.label(), "ECS");
        assert!(Route::parse("ECS").unwrap_err().contains("\"ECS\""));
    }

    #[test]
    fn runs_at_the_threshold_and_oversized_bottles_go_to_ecs() {
        assert_eq!(Route::for_run_bytes(99, 100), Route::Lambda);
        assert_eq!(Route::for_run_bytes(100, 100), Route::Ecs);
        assert_eq!(route_for(Route::Lambda, 5, 5), Route::Lambda);
        assert_eq!(route_for(Route::Lambda, 6, 5), Route::Ecs);
        assert_eq!(route_for(Route::Ecs, 1, 5), Route::Ecs);
    }
}
