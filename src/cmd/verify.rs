//! `bottlesync verify`: the brew-usable view of a mirror, checked as a
//! client would use it (see `bottlesync_core::brew::verify`).

use std::process::ExitCode;

use bottlesync_adapters::wiring::open_store;
use bottlesync_core::brew::verify::{render, verify};
use bottlesync_core::model::location::Location;

use crate::cli::VerifyArgs;

pub async fn run(args: VerifyArgs) -> ExitCode {
    let checked = async {
        let dest = Location::parse("--dest", &args.dest, false)?;
        let store = open_store(&dest, true).await?;
        verify(store.as_ref()).await
    }
    .await;
    let report = match checked {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        );
    } else {
        print!("{}", render(&report));
    }
    if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
