//! How `bottlesync sync` transfers: concurrency, segments, retries,
//! timeouts, the shutdown grace and the progress display.

#[derive(clap::Args, Debug, Clone)]
pub struct SyncTransferArgs {
    /// Parallel downloads.
    #[arg(long, env = "BOTTLESYNC_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,

    /// Bottles larger than this come down in segments of this size, over
    /// several connections at once (units B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, env = "BOTTLESYNC_SEGMENT_SIZE", default_value = "64MiB")]
    pub segment_size: String,

    /// Connections one large bottle's segments share (1: one stream per
    /// bottle, never segmented).
    #[arg(long, env = "BOTTLESYNC_CONNECTIONS_PER_BOTTLE", default_value_t = 4)]
    pub connections_per_bottle: usize,

    /// Retries per bottle after a transient failure.
    #[arg(long, env = "BOTTLESYNC_RETRIES", default_value_t = 6)]
    pub retries: usize,

    /// Seconds a download may stall before it is retried.
    #[arg(long, env = "BOTTLESYNC_READ_TIMEOUT", default_value_t = 60)]
    pub read_timeout: u64,

    /// Seconds in-flight bottles may still finish after SIGINT or SIGTERM
    /// before they are abandoned (a second signal abandons them at once).
    #[arg(long, env = "BOTTLESYNC_SHUTDOWN_GRACE", default_value_t = 80)]
    pub shutdown_grace: u64,

    /// Progress display: a bar on a terminal, log lines otherwise.
    #[arg(long, env = "BOTTLESYNC_PROGRESS", default_value = "auto")]
    pub progress: ProgressMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bar,
    Log,
}
