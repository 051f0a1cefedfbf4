//! The run messages (Block Kit with a plain `text` fallback whose first
//! line is the title): what a run's start, progress and summary say. No
//! HTTP here: they go out through the `Notifier` port.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::ports::notifier::Notification;
use crate::run::record::RunRecord;

pub const TITLE_STARTED: &str = "🚀 Homebrew Bottles Sync Started";
pub const TITLE_COMPLETE: &str = "✅ Homebrew Bottles Sync Complete";
pub const TITLE_FAILED: &str = "❌ Homebrew Bottles Sync Failed";
pub const TITLE_PROGRESS: &str = "⏳ Homebrew Sync Progress";
/// How many failures a summary names.
pub const FAILURES_SHOWN: usize = 5;

/// Where things are, for the messages.
#[derive(Clone, Debug)]
pub struct MessageContext {
    pub environment: String,
    /// `s3://bucket/prefix`
    pub mirror: String,
    pub log_group: Option<String>,
    pub dlq: Option<String>,
}

fn fields(pairs: &[(&str, String)]) -> Value {
    json!({
        "type": "section",
        "fields": pairs.iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}:*\n{v}")})).collect::<Vec<_>>(),
    })
}

fn render(title: &str, pairs: &[(&str, String)], extra: Option<String>) -> Notification {
    let mut text = String::from(title);
    for (k, v) in pairs {
        text.push_str(&format!("\n{k}: {v}"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
    ];
    for chunk in pairs.chunks(10) {
        blocks.push(fields(chunk));
    }
    if let Some(extra) = extra {
        text.push('\n');
        text.push_str(&extra);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": extra}}));
    }
    Notification {
        text,
        blocks: Value::Array(blocks),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn started(run: &RunRecord, ctx: &MessageContext) -> Notification {
    render(
        TITLE_STARTED,
        &[
            ("Environment", ctx.environment.clone()),
            ("Date", run.date.clone()),
            ("Run", run.run_id.clone()),
            ("Bottles", run.expected.to_string()),
            ("Estimated size", human_bytes(run.bytes_planned)),
            ("Workers", run.route.label().to_string()),
        ],
        None,
    )
}

/// A progress message of a running run (ECS runs, at most one per
/// interval for the whole fleet): done/total, percent, bytes, and an ETA
/// from the average rate since `started_at`.
pub fn progress(run: &RunRecord, ctx: &MessageContext, now: DateTime<Utc>) -> Notification {
    let done = run.done();
    let percent = (done.min(run.expected) * 100)
        .checked_div(run.expected)
        .unwrap_or(100);
    let elapsed_ms = (now - run.started_at).num_milliseconds().max(0);
    let remaining = run.expected.saturating_sub(done);
    let eta = if remaining == 0 {
        "any moment".to_string()
    } else if done == 0 || elapsed_ms == 0 {
        "unknown (nothing done yet)".to_string()
    } else {
        let seconds = elapsed_ms as f64 / 1000.0 * remaining as f64 / done as f64;
        let seconds = seconds.ceil().min(1e9) as i64;
        let at = now + chrono::Duration::seconds(seconds);
        let clock = if at.date_naive() == now.date_naive() {
            "%H:%M UTC"
        } else {
            "%Y-%m-%d %H:%M UTC"
        };
        format!("{} (about {})", human_duration(seconds), at.format(clock))
    };
    let rate = if elapsed_ms > 0 {
        format!(
            "{}/s",
            human_bytes((run.bytes_stored as f64 * 1000.0 / elapsed_ms as f64) as u64)
        )
    } else {
        "-".to_string()
    };
    render(
        TITLE_PROGRESS,
        &[
            ("Progress", format!("{done}/{} ({percent}%)", run.expected)),
            (
                "Stored / skipped / failed",
                format!("{} / {} / {}", run.stored, run.skipped, run.failed),
            ),
            (
                "Bytes stored",
                format!(
                    "{} of ~{}",
                    human_bytes(run.bytes_stored),
                    human_bytes(run.bytes_planned)
                ),
            ),
            ("Rate", rate),
            ("Elapsed", human_duration(elapsed_ms / 1000)),
            ("ETA", eta),
            ("Environment", ctx.environment.clone()),
            ("Run", run.run_id.clone()),
        ],
        None,
    )
}

/// The drain summary: `Complete`, or `Failed` when any bottle failed.
/// `missing_from_mirror` names the bottles the published API files point
/// at that the mirror lacks (`file name (sha256 prefix)`): clients fetch
/// those from upstream.
pub fn summary(
    run: &RunRecord,
    ctx: &MessageContext,
    dlq_depth: Option<u64>,
    missing_from_mirror: &[String],
    now: DateTime<Utc>,
) -> Notification {
    let title = if run.failed > 0 {
        TITLE_FAILED
    } else {
        TITLE_COMPLETE
    };
    let finished = run.finished_at.unwrap_or(now);
    let mut pairs = vec![
        ("Environment", ctx.environment.clone()),
        ("Date", run.date.clone()),
        ("Run", run.run_id.clone()),
        ("New bottles", run.stored.to_string()),
        ("Skipped", run.skipped.to_string()),
        ("Failed", run.failed.to_string()),
        ("Total size", human_bytes(run.bytes_stored)),
        (
            "Duration",
            human_duration((finished - run.started_at).num_seconds()),
        ),
        ("S3 location", format!("{}/{}/", ctx.mirror, run.date)),
    ];
    if let Some(depth) = dlq_depth {
        pairs.push(("DLQ depth", depth.to_string()));
    }
    let extra = (!run.failures.is_empty()).then(|| {
        let mut lines: Vec<String> = run
            .failures
            .iter()
            .take(FAILURES_SHOWN)
            .map(|f| {
                format!(
                    "• {} {} ({}): {}",
                    f.name,
                    f.tag,
                    &f.sha256[..f.sha256.len().min(12)],
                    f.reason
                )
            })
            .collect();
        if run.failed as usize > FAILURES_SHOWN {
            lines.push(format!(
                "… and {} more",
                run.failed as usize - FAILURES_SHOWN
            ));
        }
        let mut look = Vec::new();
        if let Some(group) = &ctx.log_group {
            look.push(format!("logs: {group}"));
        }
        if let Some(dlq) = &ctx.dlq {
            look.push(format!("DLQ: {dlq}"));
        }
        if !look.is_empty() {
            lines.push(format!("Where to look: {}", look.join(", ")));
        }
        format!("*Failures:*\n{}", lines.join("\n"))
    });
    if !missing_from_mirror.is_empty() {
        pairs.push(("Missing from mirror", missing_from_mirror.len().to_string()));
    }
    let missing = (!missing_from_mirror.is_empty()).then(|| missing_section(missing_from_mirror));
    let extra = match (extra, missing) {
        (Some(failures), Some(missing)) => Some(format!("{failures}\n{missing}")),
        (failures, missing) => failures.or(missing),
    };
    render(title, &pairs, extra)
}

/// The bottles the published API files name that the mirror lacks.
pub fn missing_section(missing: &[String]) -> String {
    let mut lines: Vec<String> = missing
        .iter()
        .take(FAILURES_SHOWN)
        .map(|m| format!("• {m}"))
        .collect();
    if missing.len() > FAILURES_SHOWN {
        lines.push(format!("… and {} more", missing.len() - FAILURES_SHOWN));
    }
    format!(
        "*Not in the mirror (brew fetches these from upstream):*\n{}",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::route::Route;
    use crate::run::record::{FailureNote, RunState};

    fn run(failed: u64) -> RunRecord {
        RunRecord {
            run_id: "r1".into(),
            date: "2026-11-29".into(),
            expected: 3,
            bytes_planned: 3 << 20,
            route: Route::Lambda,
            started_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            state: RunState::Finishing,
            stored: 3 - failed,
            skipped: 0,
            failed,
            bytes_stored: 2 << 20,
            failures: (0..failed)
                .map(|i| FailureNote {
                    name: format!("bad{i}"),
                    tag: "arm64_tahoe".into(),
                    sha256: "ab".repeat(32),
                    reason: "sha256 mismatch".into(),
                })
                .collect(),
            finished_at: DateTime::from_timestamp(1_800_000_075, 0),
            summary_sent: false,
            sealed: true,
            last_counted_at: None,
            compacted: true,
            summary_attempts: 0,
            summary_error: None,
            planner: None,
            planning_until: None,
            reconciled_at: None,
        }
    }

    fn ctx() -> MessageContext {
        MessageContext {
            environment: "prod".into(),
            mirror: "s3://b/p".into(),
            log_group: Some("/aws/lambda/w".into()),
            dlq: Some("https://sqs/dlq".into()),
        }
    }

    #[test]
    fn titles_and_fields() {
        let ok = summary(&run(0), &ctx(), Some(0), &[], Utc::now());
        assert_eq!(ok.title(), TITLE_COMPLETE);
        assert!(
            ok.text.contains("New bottles: 3") && ok.text.contains("Duration: 1m 15s"),
            "{}",
            ok.text
        );
        assert!(ok.text.contains("S3 location: s3://b/p/2026-11-29/"));
        let failed = summary(
            &run(1),
            &ctx(),
            Some(1),
            &["gtk+3-3.24.43.arm64_tahoe.bottle.tar.gz (0123456789ab)".to_string()],
            Utc::now(),
        );
        assert_eq!(failed.title(), TITLE_FAILED);
        assert!(
            failed.text.contains("bad0 arm64_tahoe")
                && failed.text.contains("DLQ: https://sqs/dlq")
                && failed.text.contains("Missing from mirror: 1")
                && failed
                    .text
                    .contains("• gtk+3-3.24.43.arm64_tahoe.bottle.tar.gz (0123456789ab)"),
            "{}",
            failed.text
        );
        assert_eq!(failed.blocks[0]["type"], "header");
        assert_eq!(started(&run(0), &ctx()).title(), TITLE_STARTED);
    }

    #[test]
    fn progress_counts_percent_and_eta() {
        let mut r = run(1);
        r.state = RunState::Running;
        r.route = Route::Ecs;
        r.expected = 40;
        r.stored = 8;
        r.skipped = 1;
        r.failed = 1;
        r.bytes_stored = 3 << 30;
        r.bytes_planned = 12 << 30;
        r.finished_at = None;
        // 10 of 40 done in 5 minutes: 30 more take 15 minutes.
        let now = r.started_at + chrono::Duration::minutes(5);
        let message = progress(&r, &ctx(), now);
        assert_eq!(message.title(), TITLE_PROGRESS);
        assert_eq!(TITLE_PROGRESS, "⏳ Homebrew Sync Progress");
        for needle in [
            "Progress: 10/40 (25%)",
            "Stored / skipped / failed: 8 / 1 / 1",
            "Bytes stored: 3.0 GiB of ~12.0 GiB",
            "Elapsed: 5m 0s",
            "ETA: 15m 0s (about 08:20 UTC)",
            "Environment: prod",
            "Run: r1",
        ] {
            assert!(
                message.text.contains(needle),
                "{needle:?} in\n{}",
                message.text
            );
        }
        assert_eq!(message.blocks[0]["type"], "header");
        assert_eq!(message.blocks[0]["text"]["text"], TITLE_PROGRESS);

        // Nothing done yet, and everything done.
        r.stored = 0;
        r.skipped = 0;
        r.failed = 0;
        let message = progress(&r, &ctx(), now);
        assert!(
            message.text.contains("Progress: 0/40 (0%)"),
            "{}",
            message.text
        );
        assert!(message.text.contains("ETA: unknown"), "{}", message.text);
        r.stored = 40;
        let message = progress(&r, &ctx(), now);
        assert!(message.text.contains("(100%)"), "{}", message.text);
        assert!(message.text.contains("ETA: any moment"), "{}", message.text);
    }
}
