//! The OCI image index GitHub Packages returns for
//! `<image>/manifests/<version_rebuild>`: one entry per bottle, whose
//! annotations carry the bottle's digest, size (absent for legacy bottles)
//! and brew's tab.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bottles::BottleInfo;
use crate::catalog::FormulaSpec;
use crate::tags;

/// Media type of the document (also its `Content-Type`).
pub const IMAGE_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The image index of one formula version. `dependencies` gives the
/// `(name, pkg_version)` of each runtime dependency for the tab.
pub(crate) fn render_image_index(
    formula: &FormulaSpec,
    bottles: &[BottleInfo],
    dependencies: &[(String, String)],
) -> String {
    let manifests: Vec<Value> = bottles
        .iter()
        .map(|b| manifest_entry(formula, b, dependencies))
        .collect();
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_INDEX_MEDIA_TYPE,
        "manifests": manifests,
        "annotations": {
            "com.github.package.type": "homebrew_bottle",
            "org.opencontainers.image.created": "2025-10-01",
            "org.opencontainers.image.description": format!("Stand-in formula {}", formula.name),
            "org.opencontainers.image.license": "MIT",
            "org.opencontainers.image.ref.name": formula.version_rebuild(),
            "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
            "org.opencontainers.image.source": format!("https://github.com/Homebrew/homebrew-core/blob/HEAD/Formula/{}.rb", formula.name),
            "org.opencontainers.image.title": formula.name,
            "org.opencontainers.image.url": format!("https://example.invalid/{}", formula.name),
            "org.opencontainers.image.vendor": "homebrew",
            "org.opencontainers.image.version": formula.pkg_version(),
        }
    });
    serde_json::to_string_pretty(&doc).expect("image index serialises")
}

fn manifest_entry(
    formula: &FormulaSpec,
    bottle: &BottleInfo,
    dependencies: &[(String, String)],
) -> Value {
    let (architecture, os, os_version) = tags::oci_platform(&bottle.tag);
    let tab = json!({
        "homebrew_version": "4.6.17",
        "changed_files": ["INSTALL_RECEIPT.json"],
        "source_modified_time": 1_759_000_000u64,
        "compiler": if os == "linux" { "gcc-11" } else { "clang" },
        "runtime_dependencies": dependencies.iter().map(|(name, pkg_version)| json!({
            "full_name": name,
            "version": pkg_version,
            "declared_directly": true,
        })).collect::<Vec<_>>(),
        "arch": if architecture == "amd64" { "x86_64" } else { architecture },
        "built_on": { "os": if os == "linux" { "Linux" } else { "Macintosh" }, "os_version": os_version },
    });
    let mut annotations = json!({
        "org.opencontainers.image.ref.name": formula.ref_name(&bottle.tag),
        "sh.brew.bottle.digest": bottle.sha256,
        "sh.brew.tab": tab.to_string(),
    });
    if !formula.legacy_manifest {
        annotations["sh.brew.bottle.size"] = Value::String(bottle.size.to_string());
    }
    let mut platform = json!({ "architecture": architecture, "os": os });
    if !os_version.is_empty() {
        platform["os.version"] = Value::String(os_version);
    }
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", hex::encode(Sha256::digest(format!("manifest {}", bottle.sha256)))),
        "size": 2000 + bottle.tag.len() as u64,
        "platform": platform,
        "annotations": annotations,
    })
}
