//! `bottlesync status` as text.

use bottlesync_core::run::messages::human_bytes;
use bottlesync_core::run::status::Status;

pub fn print_status(status: &Status) {
    println!("{} ({})", status.mirror, status.environment);
    for q in &status.queues {
        println!(
            "  {:<7} visible {:>6}  in flight {:>6}  delayed {:>4}",
            q.name, q.depth.visible, q.depth.in_flight, q.depth.delayed
        );
    }
    let Some(r) = &status.run else {
        println!("  no runs yet");
        return;
    };
    println!(
        "  run {} ({:?}, {:?}): {}/{} done ({} stored, {} skipped, {} failed), {} stored at {}/s, started {}{}",
        r.run.run_id,
        r.run.state,
        r.run.route,
        r.done,
        r.run.expected,
        r.run.stored,
        r.run.skipped,
        r.run.failed,
        human_bytes(r.run.bytes_stored),
        human_bytes(r.bytes_per_second as u64),
        r.run.started_at.to_rfc3339(),
        r.eta
            .map(|e| format!(", ETA {}", e.to_rfc3339()))
            .unwrap_or_default(),
    );
    if let Some(stalled) = &r.stalled {
        println!("  STALLED: {stalled}");
    }
    if r.run.summary_pending() {
        println!(
            "  summary pending: {} failed post(s){}; the reconcile posts it again",
            r.run.summary_attempts,
            r.run
                .summary_error
                .as_deref()
                .map(|e| format!(", last: {e}"))
                .unwrap_or_default()
        );
    }
}
