//! The CI preset of the fleet load and chaos run (`bottlesync-load --preset
//! ci`): a few hundred bottles with every kind of fault, three `bottlesync
//! work` processes on moto_server, one of them SIGKILLed mid-run. The run's
//! end state must be exactly right (see `bottlesync_load::verify`).

use bottlesync_load::{Backend, LoadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ci_preset_survives_faults_and_a_kill_with_a_correct_end_state() {
    let out = tempfile::tempdir().unwrap();
    let mut options = LoadOptions::preset("ci").unwrap();
    assert_eq!(options.backend, Backend::Moto);
    options.bottlesync = env!("CARGO_BIN_EXE_bottlesync").into();
    options.out_dir = out.path().to_path_buf();

    let report = bottlesync_load::run(&options).await.unwrap();
    let markdown = report.markdown();
    assert!(report.passed(), "{markdown}");
    assert_eq!(report.kills, 1, "{markdown}");
    assert!(report.bottles >= 300, "{markdown}");
    assert!(report.faults.values().sum::<usize>() > 10, "{markdown}");
    for file in ["report.json", "report.md", "timeline.csv"] {
        assert!(out.path().join(file).exists(), "{file} not written");
    }
    println!("{markdown}");
}
