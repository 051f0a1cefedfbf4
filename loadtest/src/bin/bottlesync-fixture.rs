//! Runs the Homebrew stand-in as a process, for the demo, benchmarks and
//! tests written in other languages. Prints `API_URL=...` as the first line
//! of stdout once listening, logs to stderr, and runs until SIGINT/SIGTERM.

use std::io::{IsTerminal as _, Write as _};

use bottlesync_loadtest::{Catalog, SizeModel, StandIn, StandInConfig};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    /// ~15 small formulae covering the cases mirrors get wrong.
    Tricky,
    /// `--formulae` realistic formulae with log-normal sizes.
    Generated,
    /// One formula with one arm64_tahoe bottle of `--size` bytes.
    Single,
    /// The brew-mirror catalog (openssl@3, gtk+3, fallbacks, all, Linux only).
    BrewMirror,
}

/// A local Homebrew stand-in: formula API + registry on one port,
/// signed-URL storage on another.
#[derive(Debug, Parser)]
#[command(name = "bottlesync-fixture", version)]
struct Args {
    #[arg(long, value_enum, default_value = "tricky")]
    preset: Preset,
    /// Number of formulae (generated preset).
    #[arg(long, default_value_t = 200)]
    formulae: usize,
    /// Catalog seed (generated preset).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Median bottle size (generated preset); accepts K/M/G/KiB/MiB/GiB.
    #[arg(long, value_parser = parse_size, default_value = "128KiB")]
    median_size: u64,
    /// Largest bottle size (generated preset).
    #[arg(long, value_parser = parse_size, default_value = "32MiB")]
    max_size: u64,
    /// Bottle size (single preset).
    #[arg(long, value_parser = parse_size, default_value = "2GiB")]
    size: u64,
    /// Formula name (single preset).
    #[arg(long, default_value = "bigbottle")]
    name: String,
    /// Port of the API + registry host (0: any free port).
    #[arg(long, default_value_t = 0)]
    api_port: u16,
    /// Port of the storage host (0: any free port).
    #[arg(long, default_value_t = 0)]
    storage_port: u16,
    /// Reject the anonymous QQ== token: clients must use the 401 challenge.
    #[arg(long)]
    require_token: bool,
    /// Serve `internal/packages.<tag>.jws.json` only for these client tags
    /// (comma-separated; others answer 404). Default: every client tag.
    #[arg(long, value_delimiter = ',')]
    packages_tags: Option<Vec<String>>,
    /// Cap each storage connection's body rate at this many MB/s (10^6
    /// bytes; fractions allowed; 0: no cap), like a CDN limiting one
    /// stream. Changeable at run time: PUT /__standin/conn_rate.
    #[arg(long, value_name = "MB/s", value_parser = parse_conn_rate)]
    conn_rate: Option<u64>,
}

/// MB/s (10^6 bytes) to bytes per second; 0 means no cap (`Some(0)`).
fn parse_conn_rate(text: &str) -> Result<u64, String> {
    let mb: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a rate in MB/s: {text:?}"))?;
    if !mb.is_finite() || mb < 0.0 {
        return Err(format!("not a rate in MB/s: {text:?}"));
    }
    let bytes = (mb * 1e6).round();
    if bytes > u64::MAX as f64 {
        return Err(format!("rate too large: {text:?}"));
    }
    if mb > 0.0 && bytes < 1.0 {
        return Err(format!("rate below 1 byte per second: {text:?}"));
    }
    Ok(bytes as u64)
}

/// Bytes, with an optional binary (K, KiB, M, MiB, ...) suffix.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {text:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size too large: {text:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let catalog = match args.preset {
        Preset::Tricky => Catalog::tricky(),
        Preset::Generated => Catalog::generated(
            args.formulae,
            args.seed,
            SizeModel::log_normal(args.median_size, args.max_size),
        ),
        Preset::Single => Catalog::single(args.name.clone(), args.size),
        Preset::BrewMirror => Catalog::brew_mirror(),
    };
    tracing::info!(
        preset = ?args.preset,
        formulae = catalog.formulae().len(),
        bottles = catalog.bottle_count(),
        bytes = catalog.total_bytes(),
        "hashing bottles"
    );
    let standin = StandIn::start(StandInConfig {
        catalog,
        require_token: args.require_token,
        api_port: args.api_port,
        storage_port: args.storage_port,
        packages_tags: args.packages_tags,
        conn_rate_bytes_per_sec: args.conn_rate.filter(|&rate| rate > 0),
    })
    .await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "API_URL={}", standin.api_url())?;
        stdout.flush()?;
    }
    tracing::info!(
        api_url = %standin.api_url(),
        registry_root = %standin.registry_root(),
        storage_origin = %standin.storage_origin(),
        conn_rate_bytes_per_sec = ?standin.conn_rate(),
        "ready; control endpoints under {}/__standin/",
        standin.api_origin()
    );
    bottlesync_loadtest::wait_for_stop_signal().await?;
    tracing::info!("stopping");
    standin.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_conn_rate, parse_size};

    #[test]
    fn conn_rates() {
        assert_eq!(parse_conn_rate("50"), Ok(50_000_000));
        assert_eq!(parse_conn_rate("0.5"), Ok(500_000));
        assert_eq!(parse_conn_rate("0"), Ok(0));
        assert!(parse_conn_rate("-1").is_err());
        assert!(parse_conn_rate("fast").is_err());
        assert!(parse_conn_rate("1e-9").is_err());
        assert!(parse_conn_rate("inf").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert!(parse_size("1x").is_err());
    }
}
