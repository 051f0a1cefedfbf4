//! The run manifest (`.bottlesync/runs/<id>.json`) through a real store.

use bottlesync_adapters::local::local_store::LocalStore;
use bottlesync_core::plan::route::Route;
use bottlesync_core::ports::store::DocumentStore;
use bottlesync_core::run::manifest::{ManifestMessage, RunManifest};

#[tokio::test]
async fn round_trips_through_a_store_and_refuses_another_runs_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(RunManifest::read(&store, "r1").await.unwrap(), None);
    let manifest = RunManifest::new(
        "r1",
        vec![ManifestMessage {
            route: Route::Ecs,
            body: "{\"v\":1}".into(),
        }],
    );
    manifest.write(&store).await.unwrap();
    assert_eq!(
        RunManifest::read(&store, "r1").await.unwrap(),
        Some(manifest.clone())
    );
    // A manifest copied under another run's name is refused, not used.
    let bytes = serde_json::to_vec(&manifest).unwrap();
    store
        .put_atomic(&RunManifest::key("r2").unwrap(), bytes)
        .await
        .unwrap();
    let err = RunManifest::read(&store, "r2").await.unwrap_err();
    assert!(err.to_string().contains("\"r2\""), "{err}");
    assert!(RunManifest::key("../x").is_err());
}
