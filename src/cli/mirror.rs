//! The flags of the commands that work on a mirror itself: `verify` and
//! `serve`.

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The mirror: a directory or s3://bucket[/prefix].
    #[arg(long, env = "BOTTLESYNC_SERVE_ROOT")]
    pub root: String,
    /// The address to listen on.
    #[arg(long, env = "BOTTLESYNC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// S3 root only: answer object requests with a 307 to a presigned
    /// GetObject URL (valid 15 minutes) instead of streaming the bytes.
    #[arg(long)]
    pub redirect: bool,
    /// Seconds a client has to send a complete request header (from
    /// connecting, TLS handshake included, or from a later request's
    /// first byte).
    #[arg(long, env = "BOTTLESYNC_SERVE_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a keep-alive connection is kept with no request, and a
    /// response may go without sending a byte (a client that stopped
    /// reading).
    #[arg(long, env = "BOTTLESYNC_SERVE_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Connections at once; more are closed as they come (a warning).
    #[arg(long, env = "BOTTLESYNC_SERVE_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Bytes a second a client must take while a response is open,
    /// averaged over each --idle-timeout; 0: no minimum.
    #[arg(long, env = "BOTTLESYNC_SERVE_MIN_SEND_RATE", default_value_t = 1024)]
    pub min_send_rate: u64,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate
    /// chain, leaf first; needs --tls-key. SIGHUP reads both files again.
    #[arg(long, env = "BOTTLESYNC_SERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BOTTLESYNC_SERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The mirror: a directory or s3://bucket[/prefix].
    #[arg(long, env = "BOTTLESYNC_DEST")]
    pub dest: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
