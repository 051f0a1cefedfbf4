//! What `sync` says about Portable Ruby: after the plan (dry run) and after
//! the summary, one line of what was planned and any warning, and a
//! `portable_ruby` entry in the `--report` JSON.

use bottlesync_core::plan::portable_ruby::PortableRubyPlan;
use serde_json::json;

/// The lines printed after the plan or the summary.
pub fn portable_ruby_lines(ruby: &PortableRubyPlan) -> String {
    let mut out = if ruby.versions.is_empty() {
        "portable-ruby: none planned\n".to_string()
    } else {
        format!(
            "portable-ruby: {} ({} bottles: {})\n",
            ruby.versions.join(", "),
            ruby.bottles.len(),
            ruby.bottles
                .iter()
                .map(|b| format!("{} {}", b.version, b.tag))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for warning in &ruby.warnings {
        out += &format!("portable-ruby warning: {warning}\n");
    }
    out
}

/// Adds `portable_ruby` to a report object.
pub fn add_portable_ruby(report: &mut serde_json::Value, ruby: &PortableRubyPlan) {
    if let Some(object) = report.as_object_mut() {
        object.insert(
            "portable_ruby".into(),
            json!({
                "versions": ruby.versions,
                "bottles": ruby.bottles.iter().map(|b| json!({
                    "version": b.version,
                    "tag": b.tag,
                    "sha256": b.sha256,
                    "file": b.file_name(),
                })).collect::<Vec<_>>(),
                "warnings": ruby.warnings,
            }),
        );
    }
}
