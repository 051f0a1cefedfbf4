//! What a `sync` published (the API files, flat copies it had to make, what
//! the files name that the mirror lacks), as text.

use bottlesync_core::brew::publish::PublishReport;

/// The publication's lines; `None`: the run did not finish and published
/// nothing.
pub fn print_publication(published: Option<&PublishReport>) {
    match published {
        Some(report) => {
            let files: Vec<&str> = report.api_files.iter().map(|k| k.as_str()).collect();
            println!(
                "published: {}",
                if files.is_empty() {
                    "no API files".to_string()
                } else {
                    files.join(", ")
                }
            );
            if report.flat_copies > 0 {
                // Bottles stored before flat copies existed (or whose
                // copy at commit failed).
                println!(
                    "made {} missing flat copies under bottles/",
                    report.flat_copies
                );
            }
            for missing in report.missing_labels() {
                println!("missing from mirror (brew fetches it upstream): {missing}");
            }
        }
        None => {
            println!("API files not published: the run did not finish (a rerun publishes them)")
        }
    }
}
