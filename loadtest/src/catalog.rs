//! What the stand-in serves: formulae and their bottles, as plain data.
//!
//! A catalog fixes names, versions, revisions, rebuilds, flags and bottle
//! sizes; the bytes (and so the sha256s) follow from it deterministically.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::portable_ruby::PortableRubySpec;
use crate::prng::SplitMix64;
use crate::tags::CURRENT_TAGS;

/// One bottle of a formula: its tag and its size in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleSpec {
    pub tag: String,
    pub size: u64,
}

impl BottleSpec {
    pub fn new(tag: impl Into<String>, size: u64) -> Self {
        BottleSpec {
            tag: tag.into(),
            size,
        }
    }
}

/// One `uses_from_macos` of a formula.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsesFromMacos {
    pub name: String,
    /// `since: :<macos>` (a release name such as `sonoma`): macOS provides
    /// it from that release on. `None`: every macOS provides it.
    #[serde(default)]
    pub since: Option<String>,
    /// `uses_from_macos "x" => :build`: needed to build only.
    #[serde(default)]
    pub build: bool,
}

impl UsesFromMacos {
    /// `uses_from_macos "<name>"` (runtime, no bound).
    pub fn new(name: impl Into<String>) -> Self {
        UsesFromMacos {
            name: name.into(),
            ..UsesFromMacos::default()
        }
    }

    /// With `since: :<macos>`.
    pub fn since(mut self, macos: impl Into<String>) -> Self {
        self.since = Some(macos.into());
        self
    }

    /// As `=> :build`.
    pub fn build(mut self) -> Self {
        self.build = true;
        self
    }
}

/// One requirement of a formula (`depends_on :linux`,
/// `depends_on macos: :sonoma`, `depends_on arch: :arm64`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// `linux`, `macos`, `maximum_macos`, `arch`, `xcode`.
    pub name: String,
    /// For `macos`/`maximum_macos` a release name (`sonoma`), for `arch`
    /// `arm64`/`x86_64`, for `xcode` a version.
    #[serde(default)]
    pub version: Option<String>,
    /// Dependency types such as `build`.
    #[serde(default)]
    pub contexts: Vec<String>,
}

impl Requirement {
    /// A requirement without version or contexts (`depends_on :linux`).
    pub fn new(name: impl Into<String>) -> Self {
        Requirement {
            name: name.into(),
            ..Requirement::default()
        }
    }

    /// With a version (`macos: :sonoma` is `new("macos").version("sonoma")`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// With a context such as `build`.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.contexts.push(context.into());
        self
    }
}

/// One formula as the index and the registry present it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormulaSpec {
    pub name: String,
    pub version: String,
    pub revision: u32,
    pub rebuild: u32,
    pub disabled: bool,
    pub deprecated: bool,
    /// Runtime dependencies.
    pub dependencies: Vec<String>,
    /// Build-only dependencies: in the index, never in an install's closure.
    #[serde(default)]
    pub build_dependencies: Vec<String>,
    /// `depends_on "x" => :test`: never in an install's closure.
    #[serde(default)]
    pub test_dependencies: Vec<String>,
    /// `depends_on "x" => :recommended`: installed by default.
    #[serde(default)]
    pub recommended_dependencies: Vec<String>,
    /// `depends_on "x" => :optional`: not installed by default.
    #[serde(default)]
    pub optional_dependencies: Vec<String>,
    /// `uses_from_macos "x"`: a dependency on Linux (and on macOS older
    /// than its `since` bound), provided by macOS otherwise.
    #[serde(default)]
    pub uses_from_macos: Vec<UsesFromMacos>,
    /// `depends_on :linux`, `depends_on macos: :sonoma`, ...
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// Has a `head` spec (a git URL).
    #[serde(default)]
    pub head: bool,
    /// The manifest lacks `sh.brew.bottle.size` (bottles from before 2023).
    pub legacy_manifest: bool,
    /// Empty: the index says `"bottle": {}`.
    pub bottles: Vec<BottleSpec>,
}

impl FormulaSpec {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        FormulaSpec {
            name: name.into(),
            version: version.into(),
            ..FormulaSpec::default()
        }
    }

    /// Adds a bottle (builder style).
    pub fn bottle(mut self, tag: impl Into<String>, size: u64) -> Self {
        self.bottles.push(BottleSpec::new(tag, size));
        self
    }

    /// The registry image name: `@` -> `/`, `+` -> `x`.
    pub fn image(&self) -> String {
        image_name(&self.name)
    }

    /// `version`, or `version_revision` when revision > 0.
    pub fn pkg_version(&self) -> String {
        if self.revision > 0 {
            format!("{}_{}", self.version, self.revision)
        } else {
            self.version.clone()
        }
    }

    /// The manifest reference: `pkg_version`, or `pkg_version-rebuild`.
    pub fn version_rebuild(&self) -> String {
        if self.rebuild > 0 {
            format!("{}-{}", self.pkg_version(), self.rebuild)
        } else {
            self.pkg_version()
        }
    }

    /// `org.opencontainers.image.ref.name` of the manifest entry for `tag`.
    pub fn ref_name(&self, tag: &str) -> String {
        if self.rebuild > 0 {
            format!("{}.{tag}.{}", self.pkg_version(), self.rebuild)
        } else {
            format!("{}.{tag}", self.pkg_version())
        }
    }

    /// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`.
    pub fn mirror_file_name(&self, tag: &str) -> String {
        let rebuild = if self.rebuild > 0 {
            format!(".{}", self.rebuild)
        } else {
            String::new()
        };
        format!(
            "{}-{}.{tag}.bottle{rebuild}.tar.gz",
            self.name,
            self.pkg_version()
        )
    }
}

/// The registry image of a formula name: `openssl@3` -> `openssl/3`,
/// `gtk+3` -> `gtkx3`.
pub fn image_name(name: &str) -> String {
    name.replace('@', "/").replace('+', "x")
}

/// How big generated bottles are: log-normal around `median` with `spread`
/// (the sigma of ln size), capped at `max`, at least 1 byte.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizeModel {
    pub median: u64,
    pub max: u64,
    pub spread: f64,
}

impl SizeModel {
    /// Every bottle exactly `bytes` long.
    pub fn fixed(bytes: u64) -> Self {
        SizeModel {
            median: bytes,
            max: bytes,
            spread: 0.0,
        }
    }

    /// Skewed like real bottles: most small, a long tail up to `max`.
    pub fn log_normal(median: u64, max: u64) -> Self {
        SizeModel {
            median,
            max,
            spread: 1.5,
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u64 {
        if self.spread <= 0.0 {
            return self.median.min(self.max);
        }
        let ln = (self.median.max(1) as f64).ln() + self.spread * rng.normal();
        (ln.exp() as u64).clamp(1, self.max.max(1))
    }

    /// A bottle of the same formula on another tag: within about ±25%.
    fn sibling(&self, base: u64, rng: &mut SplitMix64) -> u64 {
        if self.spread <= 0.0 {
            return base;
        }
        let factor = 0.75 + rng.unit() * 0.5;
        ((base as f64 * factor) as u64).clamp(1, self.max.max(1))
    }
}

impl Default for SizeModel {
    /// Median 128 KiB, at most 32 MiB.
    fn default() -> Self {
        SizeModel::log_normal(128 << 10, 32 << 20)
    }
}

/// The formulae a stand-in serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    formulae: Vec<FormulaSpec>,
    /// Portable Ruby's versions (never formulae: not in the API files).
    portable_ruby: Vec<PortableRubySpec>,
}

impl Catalog {
    /// The Portable Ruby versions the registry serves.
    pub fn portable_ruby(&self) -> &[PortableRubySpec] {
        &self.portable_ruby
    }

    /// This catalog serving `versions` of Portable Ruby (builder style).
    pub fn with_portable_ruby(mut self, versions: Vec<PortableRubySpec>) -> Self {
        self.portable_ruby = versions;
        self
    }
}

/// The macOS tags the tricky catalog gives its main formulae.
const TRICKY_MACOS: [&str; 7] = [
    "arm64_golden_gate",
    "arm64_tahoe",
    "tahoe",
    "arm64_sequoia",
    "sequoia",
    "arm64_sonoma",
    "sonoma",
];

impl Catalog {
    /// Exactly these formulae.
    pub fn from_formulae(formulae: Vec<FormulaSpec>) -> Self {
        Catalog {
            formulae,
            ..Catalog::default()
        }
    }

    /// One formula `name` 1.0.0 with one `arm64_tahoe` bottle of `size` bytes.
    pub fn single(name: impl Into<String>, size: u64) -> Self {
        Catalog::from_formulae(vec![
            FormulaSpec::new(name, "1.0.0").bottle("arm64_tahoe", size),
        ])
    }

    /// About fifteen small formulae covering the cases a mirror gets wrong:
    /// `@` and `+` in names, revision, rebuild, an `all` bottle, formulae
    /// whose newest bottle is for an older macOS, no bottle at all, disabled,
    /// deprecated, Linux only (with the `:linux` requirement), a manifest
    /// without sizes, `uses_from_macos` (`wget`: `zlib`, no bound; `curl`:
    /// `zlib` since sequoia), and `glibc` and `gcc` (Linux bottles only),
    /// which brew on an old Linux adds to every formula.
    pub fn tricky() -> Self {
        let with_tags = |f, tags: &[&str]| with_small_bottles(f, tags, 200_000);
        let linux = ["x86_64_linux", "arm64_linux"];
        let all_current: Vec<&str> = TRICKY_MACOS.iter().chain(&linux).copied().collect();
        let no_golden_gate: Vec<&str> = all_current[1..].to_vec();

        let wget = FormulaSpec {
            dependencies: vec!["libidn2".into(), "openssl@3".into()],
            uses_from_macos: vec![UsesFromMacos::new("zlib")],
            ..FormulaSpec::new("wget", "1.25.0")
        };
        let openssl = FormulaSpec {
            dependencies: vec!["ca-certificates".into()],
            ..FormulaSpec::new("openssl@3", "3.6.0")
        };
        let curl = FormulaSpec {
            rebuild: 1,
            dependencies: vec!["libidn2".into(), "openssl@3".into()],
            uses_from_macos: vec![UsesFromMacos::new("zlib").since("sequoia")],
            ..FormulaSpec::new("curl", "8.17.0")
        };
        let libidn2 = FormulaSpec {
            revision: 1,
            ..FormulaSpec::new("libidn2", "2.3.8")
        };
        let libsigcxx = FormulaSpec {
            revision: 2,
            rebuild: 1,
            ..FormulaSpec::new("libsigc++", "3.6.0")
        };
        let gtk = FormulaSpec {
            dependencies: vec!["libsigc++".into()],
            ..FormulaSpec::new("gtk+3", "3.24.51")
        };
        let python = FormulaSpec {
            dependencies: vec!["openssl@3".into(), "ca-certificates".into()],
            ..FormulaSpec::new("python@3.13", "3.13.9")
        };
        let gone = FormulaSpec {
            disabled: true,
            ..FormulaSpec::new("gone", "1.2.0")
        };
        let old_but_ok = FormulaSpec {
            deprecated: true,
            ..FormulaSpec::new("old-but-ok", "3.1")
        };
        let legacy = FormulaSpec {
            legacy_manifest: true,
            ..FormulaSpec::new("legacy-sizes", "1.0.2")
        };

        let mut python = with_tags(python, &no_golden_gate);
        // The largest bottle of the catalog.
        python.bottles[0].size = 200_000;

        Catalog::from_formulae(vec![
            with_tags(wget, &all_current),
            with_tags(openssl, &all_current),
            with_tags(curl, &no_golden_gate),
            with_tags(libidn2, &all_current),
            with_tags(libsigcxx, &no_golden_gate),
            with_tags(gtk, &no_golden_gate),
            python,
            with_tags(FormulaSpec::new("ca-certificates", "2025-09-09"), &["all"]),
            with_tags(
                FormulaSpec::new("old-tool", "1.0"),
                &["arm64_sequoia", "sequoia", "arm64_sonoma"],
            ),
            with_tags(
                FormulaSpec::new("ancient", "0.9.1"),
                &["arm64_sonoma", "sonoma", "ventura"],
            ),
            FormulaSpec::new("no-bottle", "2.0"),
            with_tags(gone, &["arm64_tahoe", "arm64_sequoia", "x86_64_linux"]),
            with_tags(
                old_but_ok,
                &["arm64_tahoe", "tahoe", "arm64_sequoia", "x86_64_linux"],
            ),
            with_tags(linux_only(), &linux),
            with_tags(
                legacy,
                &["arm64_tahoe", "arm64_sequoia", "sonoma", "x86_64_linux"],
            ),
            with_tags(FormulaSpec::new("zlib", "1.3.1"), &all_current),
            with_tags(FormulaSpec::new("glibc", "2.35"), &linux),
            with_tags(FormulaSpec::new("gcc", "15.2.0"), &linux),
        ])
        .with_portable_ruby(PortableRubySpec::two_versions())
    }

    /// The catalog of the brew-mirror tests (issue 11): small bottles for
    /// the tags a mirror of current Macs and Linux serves
    /// ([`BREW_MIRROR_TAGS`]), and one formula for each way a client's
    /// request differs from the plain case:
    /// - `openssl@3` (`@` in the name, image `openssl/3`), needing
    ///   `ca-certificates`, which has one `all` bottle;
    /// - `gtk+3` (`+`, image `gtkx3`): runtime dependencies `libsigc++` and
    ///   `openssl@3`, build-only dependency `pkgconf` (bottled, but never in
    ///   an install's closure);
    /// - `libsigc++`: revision 2 and rebuild 1 (`3.6.0_2`, `.bottle.1.`);
    /// - `old-tool`: bottled for sequoia only, so tahoe clients install the
    ///   sequoia bottle (`bottle_tag` in their per-tag file);
    /// - `linux-only`: an `x86_64_linux` bottle only (no bottle on macOS)
    ///   and `depends_on :linux` (`":linux"` in `stable_dependencies`);
    /// - `wget`: an ordinary formula needing `openssl@3` and `old-tool`,
    ///   with `uses_from_macos "zlib"` (no bound: a dependency on Linux only);
    /// - `curl` (a `head` spec): runtime dependency `openssl@3`, build
    ///   `pkgconf`, test `old-tool`, recommended `ca-certificates`, optional
    ///   `gtk+3`, `depends_on macos: :sonoma => :build`, and
    ///   `uses_from_macos` `zlib` (no bound), `libxml2` since tahoe (so
    ///   sequoia clients install it) and `pkgconf => :build` since sonoma;
    /// - `zlib` and `libxml2`: bottled for every mirror tag;
    /// - `gone`: disabled (`disable_args`), bottled for every mirror tag;
    /// - `glibc` and `gcc`: `x86_64_linux` bottles only, the dependencies
    ///   brew adds on a Linux host with an old glibc.
    pub fn brew_mirror() -> Self {
        let with_tags = |f, tags: &[&str]| with_small_bottles(f, tags, 20_000);
        let openssl = FormulaSpec {
            dependencies: vec!["ca-certificates".into()],
            ..FormulaSpec::new("openssl@3", "3.6.0")
        };
        let gtk = FormulaSpec {
            dependencies: vec!["libsigc++".into(), "openssl@3".into()],
            build_dependencies: vec!["pkgconf".into()],
            ..FormulaSpec::new("gtk+3", "3.24.51")
        };
        let libsigcxx = FormulaSpec {
            revision: 2,
            rebuild: 1,
            ..FormulaSpec::new("libsigc++", "3.6.0")
        };
        let wget = FormulaSpec {
            dependencies: vec!["openssl@3".into(), "old-tool".into()],
            build_dependencies: vec!["pkgconf".into()],
            uses_from_macos: vec![UsesFromMacos::new("zlib")],
            ..FormulaSpec::new("wget", "1.25.0")
        };
        let curl = FormulaSpec {
            dependencies: vec!["openssl@3".into()],
            build_dependencies: vec!["pkgconf".into()],
            test_dependencies: vec!["old-tool".into()],
            recommended_dependencies: vec!["ca-certificates".into()],
            optional_dependencies: vec!["gtk+3".into()],
            uses_from_macos: vec![
                UsesFromMacos::new("zlib"),
                UsesFromMacos::new("libxml2").since("tahoe"),
                UsesFromMacos::new("pkgconf").build().since("sonoma"),
            ],
            requirements: vec![Requirement::new("macos").version("sonoma").context("build")],
            head: true,
            ..FormulaSpec::new("curl", "8.17.0")
        };
        let gone = FormulaSpec {
            disabled: true,
            ..FormulaSpec::new("gone", "1.2.0")
        };
        Catalog::from_formulae(vec![
            with_tags(FormulaSpec::new("ca-certificates", "2025-09-09"), &["all"]),
            with_tags(openssl, &BREW_MIRROR_TAGS),
            with_tags(gtk, &BREW_MIRROR_TAGS),
            with_tags(libsigcxx, &BREW_MIRROR_TAGS),
            with_tags(FormulaSpec::new("pkgconf", "2.5.1"), &BREW_MIRROR_TAGS),
            with_tags(
                FormulaSpec::new("old-tool", "1.0"),
                &["arm64_sequoia", "sequoia"],
            ),
            with_tags(linux_only(), &["x86_64_linux"]),
            with_tags(wget, &BREW_MIRROR_TAGS),
            with_tags(curl, &BREW_MIRROR_TAGS),
            with_tags(FormulaSpec::new("zlib", "1.3.1"), &BREW_MIRROR_TAGS),
            with_tags(FormulaSpec::new("libxml2", "2.13.5"), &BREW_MIRROR_TAGS),
            with_tags(gone, &BREW_MIRROR_TAGS),
            with_tags(FormulaSpec::new("glibc", "2.35"), &["x86_64_linux"]),
            with_tags(FormulaSpec::new("gcc", "15.2.0"), &["x86_64_linux"]),
        ])
        .with_portable_ruby(PortableRubySpec::two_versions())
    }

    /// This catalog after formula `name` moved to `version`, as a version
    /// bump does upstream: revision and rebuild back to 0, so new file
    /// names, manifest reference and bottle bytes (new sha256s) for that
    /// formula, same tags and sizes. Every other formula keeps its exact
    /// bytes (a bottle's content follows from name, pkg_version, rebuild,
    /// tag and size only).
    ///
    /// Panics when the catalog has no formula `name` (a test's mistake).
    pub fn with_version(&self, name: &str, version: &str) -> Catalog {
        let mut bumped = self.clone();
        let formula = bumped
            .formulae
            .iter_mut()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("with_version: no formula {name} in the catalog"));
        formula.version = version.to_string();
        formula.revision = 0;
        formula.rebuild = 0;
        bumped
    }

    /// `formulae` formulae with realistic, unique names (some with `@` and
    /// `+`), about seven bottles each over the current tags (some lack the
    /// newest macOS, some are Linux or macOS only, some have an `all` bottle,
    /// a few have none), random revisions and rebuilds, and sizes drawn from
    /// `sizes`. The same arguments always give the same catalog.
    pub fn generated(formulae: usize, seed: u64, sizes: SizeModel) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x6361_7461_6c6f_6721);
        let mut names = NameGenerator::default();
        let mut out: Vec<FormulaSpec> = Vec::with_capacity(formulae);
        for _ in 0..formulae {
            let name = names.next(&mut rng);
            let mut f = FormulaSpec::new(name, random_version(&mut rng));
            if rng.chance(0.2) {
                f.revision = 1 + rng.below(3) as u32;
            }
            if rng.chance(0.25) {
                f.rebuild = 1 + rng.below(2) as u32;
            }
            f.deprecated = rng.chance(0.03);
            f.disabled = rng.chance(0.01);
            f.legacy_manifest = rng.chance(0.05);
            if !out.is_empty() {
                for _ in 0..rng.below(4) {
                    let dep = &out[rng.below(out.len() as u64) as usize].name;
                    if !f.dependencies.contains(dep) {
                        f.dependencies.push(dep.clone());
                    }
                }
            }
            let base = sizes.sample(&mut rng);
            for tag in random_tags(&mut rng) {
                let size = sizes.sibling(base, &mut rng);
                f.bottles.push(BottleSpec::new(tag, size));
            }
            out.push(f);
        }
        Catalog::from_formulae(out)
    }

    pub fn formulae(&self) -> &[FormulaSpec] {
        &self.formulae
    }

    pub fn formula(&self, name: &str) -> Option<&FormulaSpec> {
        self.formulae.iter().find(|f| f.name == name)
    }

    pub fn bottle_count(&self) -> usize {
        self.formulae.iter().map(|f| f.bottles.len()).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.formulae
            .iter()
            .flat_map(|f| &f.bottles)
            .map(|b| b.size)
            .sum()
    }

    /// Rejects catalogs the stand-in cannot serve unambiguously: duplicate
    /// names or images, empty names or versions, a tag twice in a formula.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut names = HashSet::new();
        let mut images = HashSet::new();
        for f in &self.formulae {
            anyhow::ensure!(!f.name.is_empty(), "formula with an empty name");
            anyhow::ensure!(!f.version.is_empty(), "{}: empty version", f.name);
            anyhow::ensure!(names.insert(&f.name), "duplicate formula {}", f.name);
            anyhow::ensure!(
                images.insert(f.image()),
                "{}: image {} used twice",
                f.name,
                f.image()
            );
            let mut tags = HashSet::new();
            for b in &f.bottles {
                anyhow::ensure!(tags.insert(&b.tag), "{}: tag {} twice", f.name, b.tag);
            }
        }
        Ok(())
    }
}

/// `linux-only` 0.5.0 with `depends_on :linux`.
fn linux_only() -> FormulaSpec {
    FormulaSpec {
        requirements: vec![Requirement::new("linux")],
        ..FormulaSpec::new("linux-only", "0.5.0")
    }
}

/// The client tags [`Catalog::brew_mirror`] has bottles for.
pub const BREW_MIRROR_TAGS: [&str; 5] = [
    "arm64_tahoe",
    "tahoe",
    "arm64_sequoia",
    "sequoia",
    "x86_64_linux",
];

/// Adds a bottle for each of `tags`, sizes from 300 bytes to about
/// `max_size`, log-uniform, fixed by name and tag.
fn with_small_bottles(mut f: FormulaSpec, tags: &[&str], max_size: u64) -> FormulaSpec {
    for tag in tags {
        let mut rng = SplitMix64::from_key(&format!("{}/{tag}", f.name));
        let size = (300f64.ln() + rng.unit() * (max_size as f64 / 300.0).ln()).exp() as u64;
        f.bottles.push(BottleSpec::new(*tag, size));
    }
    f
}

fn random_version(rng: &mut SplitMix64) -> String {
    match rng.below(10) {
        0 => format!(
            "20{}{:02}{:02}",
            20 + rng.below(6),
            1 + rng.below(12),
            1 + rng.below(28)
        ),
        1 => format!("{}.{}", rng.below(10), rng.below(30)),
        2 => format!(
            "{}{}",
            1 + rng.below(9),
            ['a', 'b', 'c', 'e'][rng.below(4) as usize]
        ),
        _ => format!("{}.{}.{}", rng.below(12), rng.below(40), rng.below(25)),
    }
}

/// A realistic set of bottle tags for one formula (about seven on average).
fn random_tags(rng: &mut SplitMix64) -> Vec<&'static str> {
    match rng.below(100) {
        0..4 => Vec::new(),
        4..12 => vec!["all"],
        12..17 => vec!["x86_64_linux", "arm64_linux"],
        // Built before the newest macOS: no golden_gate/tahoe bottles.
        17..29 => with_random_gap(CURRENT_TAGS[3..].to_vec(), rng),
        // macOS only.
        29..37 => CURRENT_TAGS[1..7].to_vec(),
        // The usual: tahoe down to sonoma plus Linux, golden_gate for some.
        _ => {
            let from = if rng.chance(0.35) { 0 } else { 1 };
            with_random_gap(CURRENT_TAGS[from..].to_vec(), rng)
        }
    }
}

/// Sometimes drops one tag, as real formulae miss odd bottles.
fn with_random_gap(mut tags: Vec<&'static str>, rng: &mut SplitMix64) -> Vec<&'static str> {
    if tags.len() > 3 && rng.chance(0.2) {
        let i = rng.below(tags.len() as u64) as usize;
        tags.remove(i);
    }
    tags
}

/// Produces unique formula names that look like homebrew/core's.
#[derive(Default)]
struct NameGenerator {
    used: HashSet<String>,
    images: HashSet<String>,
}

const KNOWN_NAMES: &[&str] = &[
    "jq",
    "ripgrep",
    "fd",
    "bat",
    "git",
    "gh",
    "node",
    "go",
    "rust",
    "cmake",
    "ninja",
    "zstd",
    "xz",
    "lz4",
    "pcre2",
    "sqlite",
    "readline",
    "ncurses",
    "gettext",
    "glib",
    "cairo",
    "pango",
    "harfbuzz",
    "freetype",
    "fontconfig",
    "libpng",
    "jpeg-turbo",
    "libtiff",
    "webp",
    "giflib",
    "ffmpeg",
    "x264",
    "x265",
    "lame",
    "opus",
    "libvorbis",
    "flac",
    "imagemagick",
    "ghostscript",
    "poppler",
    "tesseract",
    "leptonica",
    "protobuf",
    "grpc",
    "abseil",
    "boost",
    "icu4c@77",
    "libxml2",
    "libxslt",
    "libyaml",
    "libffi",
    "gmp",
    "mpfr",
    "isl",
    "gcc",
    "llvm",
    "lld",
    "htop",
    "tmux",
    "neovim",
    "vim",
    "emacs",
    "zsh",
    "fish",
    "bash",
    "coreutils",
    "findutils",
    "gnu-sed",
    "gawk",
    "grep",
    "tree",
    "watch",
    "pkgconf",
    "autoconf",
    "automake",
    "libtool",
    "m4",
    "bison",
    "flex",
    "openjdk",
    "openjdk@21",
    "openjdk@17",
    "maven",
    "gradle",
    "kotlin",
    "python@3.12",
    "python@3.11",
    "node@22",
    "node@20",
    "postgresql@17",
    "postgresql@16",
    "mysql",
    "mariadb",
    "redis",
    "valkey",
    "nginx",
    "httpd",
    "php",
    "php@8.3",
    "ruby",
    "ruby@3.3",
    "perl",
    "lua",
    "luajit",
    "erlang",
    "elixir",
    "ghc",
    "cabal-install",
    "ocaml",
    "opam",
    "zig",
    "deno",
    "terraform",
    "awscli",
    "azure-cli",
    "kubernetes-cli",
    "helm",
    "k9s",
    "docker",
    "podman",
    "qemu",
    "libvirt",
    "gnupg",
    "gnutls",
    "nettle",
    "libgcrypt",
    "libgpg-error",
    "libassuan",
    "pinentry",
    "openssh",
    "libssh2",
    "nghttp2",
    "brotli",
    "c-ares",
    "libuv",
    "libevent",
    "libnghttp3",
    "gtk+",
    "gtk4",
    "libsigc++@2",
    "glibmm",
    "cairomm",
    "pangomm",
    "gtkmm3",
    "atkmm",
    "libxml++",
    "dbus",
    "at-spi2-core",
    "gdk-pixbuf",
    "gobject-introspection",
    "librsvg",
    "shared-mime-info",
    "hicolor-icon-theme",
];

const SYLLABLES: &[&str] = &[
    "ar", "bo", "cal", "dex", "el", "fin", "gra", "hex", "io", "jet", "kel", "lum", "mo", "nix",
    "or", "pix", "quo", "ra", "syn", "tor", "ux", "vel", "wav", "xen", "yo", "zen", "flo", "gri",
    "stri", "mat", "ple", "dra", "cor", "ten", "sig", "kit",
];

impl NameGenerator {
    fn next(&mut self, rng: &mut SplitMix64) -> String {
        // Real names first (in a seed-dependent order of preference), then
        // invented ones.
        for _ in 0..4 {
            let candidate = (*rng.pick(KNOWN_NAMES)).to_string();
            if self.accept(&candidate) {
                return candidate;
            }
        }
        loop {
            let candidate = self.invent(rng);
            if self.accept(&candidate) {
                return candidate;
            }
        }
    }

    fn invent(&self, rng: &mut SplitMix64) -> String {
        let mut name = String::new();
        if rng.chance(0.3) {
            name.push_str("lib");
        }
        for _ in 0..1 + rng.below(2) {
            let syllable = *rng.pick(SYLLABLES);
            name.push_str(syllable);
        }
        match rng.below(30) {
            0 => name.push_str("++"),
            1 => name.push('+'),
            2 => name.push_str(&format!("@{}", 2 + rng.below(20))),
            4 => name.push_str(&format!("@{}.{}", 1 + rng.below(4), rng.below(14))),
            5 => name.push_str("-utils"),
            6 => name.push_str(&format!("{}", 2 + rng.below(4))),
            7 => name.push_str("-cli"),
            _ => {}
        }
        if self.used.len() > 2000 && rng.chance(0.5) {
            // Keep finding fresh names in very large catalogs.
            name.push_str(&format!("{}", rng.below(1000)));
        }
        name
    }

    fn accept(&mut self, name: &str) -> bool {
        let image = image_name(name);
        if self.used.contains(name) || self.images.contains(&image) {
            return false;
        }
        self.used.insert(name.to_string());
        self.images.insert(image);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        let curl = FormulaSpec {
            rebuild: 1,
            ..FormulaSpec::new("curl", "8.17.0")
        };
        assert_eq!(
            curl.mirror_file_name("arm64_tahoe"),
            "curl-8.17.0.arm64_tahoe.bottle.1.tar.gz"
        );
        assert_eq!(curl.version_rebuild(), "8.17.0-1");
        assert_eq!(curl.ref_name("sonoma"), "8.17.0.sonoma.1");
        let openssl = FormulaSpec::new("openssl@3", "3.6.0");
        assert_eq!(
            openssl.mirror_file_name("arm64_tahoe"),
            "openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz"
        );
        assert_eq!(openssl.image(), "openssl/3");
        assert_eq!(image_name("gtk+3"), "gtkx3");
        let libidn2 = FormulaSpec {
            revision: 1,
            ..FormulaSpec::new("libidn2", "2.3.8")
        };
        assert_eq!(libidn2.pkg_version(), "2.3.8_1");
        assert_eq!(libidn2.version_rebuild(), "2.3.8_1");
    }

    /// The shapes issue 17 needs in both named catalogs (the per-tag
    /// fixtures and the replay tests rely on them).
    #[test]
    fn named_catalogs_have_every_shape_brew_serialises() {
        for (catalog, macos_tags) in [
            (Catalog::brew_mirror(), &BREW_MIRROR_TAGS[..4]),
            (Catalog::tricky(), &TRICKY_MACOS[..]),
        ] {
            catalog.validate().unwrap();
            let formula = |name: &str| catalog.formula(name).unwrap();
            let tags = |name: &str| -> Vec<&str> {
                formula(name)
                    .bottles
                    .iter()
                    .map(|b| b.tag.as_str())
                    .collect()
            };
            assert_eq!(tags("ca-certificates"), ["all"]);
            // old-tool: no bottle for the newest macOS, so a fallback.
            assert!(!tags("old-tool").contains(&macos_tags[0]));
            assert!(tags("zlib").contains(&"x86_64_linux"));
            assert!(macos_tags.iter().all(|t| tags("zlib").contains(t)));
            let uses: Vec<&UsesFromMacos> = catalog
                .formulae()
                .iter()
                .flat_map(|f| &f.uses_from_macos)
                .collect();
            assert!(uses.iter().any(|u| u.name == "zlib" && u.since.is_none()));
            assert!(uses.iter().any(|u| u.since.is_some()));
            assert_eq!(
                formula("linux-only").requirements,
                [Requirement::new("linux")]
            );
            let gone = formula("gone");
            assert!(gone.disabled && gone.bottles.len() >= 3);
            for name in ["glibc", "gcc"] {
                assert!(formula(name).dependencies.is_empty(), "{name}");
                assert!(
                    tags(name).iter().all(|t| t.ends_with("_linux")) && !tags(name).is_empty(),
                    "{name}"
                );
            }
        }
        let curl = Catalog::brew_mirror().formula("curl").unwrap().clone();
        assert!(curl.head && curl.uses_from_macos.iter().any(|u| u.build));
    }

    /// Catalogs written before the new fields existed still load.
    #[test]
    fn new_formula_fields_default_when_absent() {
        let mut json = serde_json::to_value(FormulaSpec::new("a", "1.0")).unwrap();
        let object = json.as_object_mut().unwrap();
        for key in [
            "build_dependencies",
            "test_dependencies",
            "recommended_dependencies",
            "optional_dependencies",
            "uses_from_macos",
            "requirements",
            "head",
        ] {
            assert!(object.remove(key).is_some(), "{key}");
        }
        let read: FormulaSpec = serde_json::from_value(json).unwrap();
        assert_eq!(read, FormulaSpec::new("a", "1.0"));
        let uses: UsesFromMacos = serde_json::from_str(r#"{"name": "zlib"}"#).unwrap();
        assert_eq!(uses, UsesFromMacos::new("zlib"));
        let requirement: Requirement = serde_json::from_str(r#"{"name": "linux"}"#).unwrap();
        assert_eq!(requirement, Requirement::new("linux"));
    }

    #[test]
    fn generated_is_deterministic_and_valid() {
        let a = Catalog::generated(500, 7, SizeModel::default());
        let b = Catalog::generated(500, 7, SizeModel::default());
        assert_eq!(a, b);
        a.validate().unwrap();
        assert_eq!(a.formulae().len(), 500);
        let per_formula = a.bottle_count() as f64 / 500.0;
        assert!((5.0..9.0).contains(&per_formula), "{per_formula}");
        assert!(a.formulae().iter().any(|f| f.name.contains('@')));
        assert!(a.formulae().iter().any(|f| f.name.contains('+')));
        assert!(a.formulae().iter().any(|f| f.bottles.is_empty()));
        assert!(
            a.formulae()
                .iter()
                .flat_map(|f| &f.bottles)
                .all(|b| b.tag != "golden_gate" && b.size >= 1 && b.size <= 32 << 20)
        );
        let fixed = Catalog::generated(20, 1, SizeModel::fixed(1000));
        assert!(
            fixed
                .formulae()
                .iter()
                .flat_map(|f| &f.bottles)
                .all(|b| b.size == 1000)
        );
        Catalog::tricky().validate().unwrap();
    }
}
