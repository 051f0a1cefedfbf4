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
/// Block Kit's limits (Slack refuses the whole message, `invalid_blocks`,
/// past them): a section's text, a field's text, a header's text.
pub const SECTION_TEXT_LIMIT: usize = 3000;
const FIELD_TEXT_LIMIT: usize = 2000;
const HEADER_TEXT_LIMIT: usize = 150;
/// The longest line a listed item gets (a failure's reason can be a whole
/// error chain); the run's record keeps it whole.
const ITEM_LINE_LIMIT: usize = 400;

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
        "fields": pairs.iter().map(|(k, v)| json!({"type": "mrkdwn", "text": clip(&format!("*{k}:*\n{v}"), FIELD_TEXT_LIMIT)})).collect::<Vec<_>>(),
    })
}

/// `text` cut to at most `limit` characters, ending in `…` when cut.
fn clip(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(limit.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// One section's text: `heading`, as many of `lines` as fit in Slack's
/// limit (each clipped), `… and N more` for the rest and for `unlisted`
/// items not in `lines` at all, then `footer`, which always fits.
fn listed_section(
    heading: &str,
    lines: &[String],
    unlisted: usize,
    footer: Option<&str>,
) -> String {
    let footer = footer.map(|f| clip(f, ITEM_LINE_LIMIT));
    let mut text = heading.to_string();
    // Room kept for the "and N more" line and the footer.
    let reserve = 40 + footer.as_ref().map_or(0, |f| f.chars().count() + 1);
    let mut shown = 0;
    for line in lines {
        let line = clip(line, ITEM_LINE_LIMIT);
        if text.chars().count() + 1 + line.chars().count() + reserve > SECTION_TEXT_LIMIT {
            break;
        }
        text.push('\n');
        text.push_str(&line);
        shown += 1;
    }
    let more = lines.len() - shown + unlisted;
    if more > 0 {
        text.push_str(&format!("\n… and {more} more"));
    }
    if let Some(footer) = footer {
        text.push('\n');
        text.push_str(&footer);
    }
    text
}

/// The message: a header, the fields (ten to a section), and each of
/// `sections` (texts within [`SECTION_TEXT_LIMIT`]) as a section of its own.
fn render(title: &str, pairs: &[(&str, String)], sections: Vec<String>) -> Notification {
    let mut text = String::from(title);
    for (k, v) in pairs {
        text.push_str(&format!("\n{k}: {v}"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_TEXT_LIMIT), "emoji": true}}),
    ];
    for chunk in pairs.chunks(10) {
        blocks.push(fields(chunk));
    }
    for section in sections {
        let section = clip(&section, SECTION_TEXT_LIMIT);
        text.push('\n');
        text.push_str(&section);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}));
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
        Vec::new(),
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
        Vec::new(),
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
    let mut sections = Vec::new();
    if !run.failures.is_empty() {
        let lines: Vec<String> = run
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
        let unlisted = (run.failed as usize).saturating_sub(lines.len());
        let mut look = Vec::new();
        if let Some(group) = &ctx.log_group {
            look.push(format!("logs: {group}"));
        }
        if let Some(dlq) = &ctx.dlq {
            look.push(format!("DLQ: {dlq}"));
        }
        let footer = (!look.is_empty()).then(|| format!("Where to look: {}", look.join(", ")));
        sections.push(listed_section(
            "*Failures:*",
            &lines,
            unlisted,
            footer.as_deref(),
        ));
    }
    if !missing_from_mirror.is_empty() {
        pairs.push(("Missing from mirror", missing_from_mirror.len().to_string()));
        sections.push(missing_section(missing_from_mirror));
    }
    render(title, &pairs, sections)
}

/// The bottles the published API files name that the mirror lacks.
pub fn missing_section(missing: &[String]) -> String {
    let lines: Vec<String> = missing
        .iter()
        .take(FAILURES_SHOWN)
        .map(|m| format!("• {m}"))
        .collect();
    listed_section(
        "*Not in the mirror (brew fetches these from upstream):*",
        &lines,
        missing.len() - lines.len(),
        None,
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

    /// Slack refuses a message whose section text passes 3,000 characters
    /// (`invalid_blocks`): long reasons and long lists are cut, counted.
    #[test]
    fn long_failure_lists_fit_slacks_limits() {
        let mut r = run(3);
        r.failed = 40;
        for f in &mut r.failures {
            f.reason = "x".repeat(5000);
        }
        let missing: Vec<String> = (0..500)
            .map(|i| {
                format!(
                    "{}-{i}.arm64_tahoe.bottle.tar.gz (0123456789ab)",
                    "n".repeat(900)
                )
            })
            .collect();
        let message = summary(&r, &ctx(), Some(40), &missing, Utc::now());
        let blocks = message.blocks.as_array().unwrap();
        assert!(blocks.len() <= 50);
        let sections: Vec<&str> = blocks
            .iter()
            .filter_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .filter(|_| b["type"] == "section")
            })
            .collect();
        assert_eq!(sections.len(), 2, "failures and missing, one section each");
        for text in &sections {
            assert!(
                text.chars().count() <= SECTION_TEXT_LIMIT,
                "{} characters",
                text.chars().count()
            );
        }
        // Three failures listed (clipped), 37 counted; the footer kept.
        assert!(sections[0].contains("bad2 arm64_tahoe"), "{}", sections[0]);
        assert!(sections[0].contains("… and 37 more"), "{}", sections[0]);
        assert!(sections[0].ends_with("Where to look: logs: /aws/lambda/w, DLQ: https://sqs/dlq"));
        // 500 missing: what fits is listed, the rest counted.
        let listed = sections[1].lines().filter(|l| l.starts_with("• ")).count();
        assert!(listed >= 1);
        assert!(
            sections[1].contains(&format!("… and {} more", 500 - listed)),
            "{}",
            sections[1]
        );
        // Fields stay within theirs.
        for block in blocks.iter().filter(|b| b["fields"].is_array()) {
            for field in block["fields"].as_array().unwrap() {
                assert!(field["text"].as_str().unwrap().chars().count() <= 2000);
            }
        }
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
