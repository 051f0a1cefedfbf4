//! `bottlesync serve`: the mirror over HTTP for brew clients (see
//! `bottlesync_adapters::http::server`), until SIGTERM or Ctrl-C, which
//! let the responses in flight finish (a second signal abandons them).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_adapters::http::ConnectionLimits;
use bottlesync_adapters::http::server::MirrorServer;
use bottlesync_adapters::wiring::open_store;
use bottlesync_core::Error;
use bottlesync_core::model::location::Location;
use bottlesync_core::shutdown::ShutdownSignal;
use tokio::net::TcpListener;

use super::stop_on_signals;
use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs) -> ExitCode {
    let shutdown = ShutdownSignal::new();
    let served = async {
        let root = Location::parse("--root", &args.root, false)?;
        let directory = match &root {
            Location::Dir(path) if !path.is_dir() => {
                return Err(Error::config(
                    "--root",
                    format!("{} is not a directory", path.display()),
                ));
            }
            Location::Dir(path) => Some(path.clone()),
            _ => None,
        };
        let limits = ConnectionLimits {
            header_timeout: Duration::from_secs(args.header_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_connections: args.max_connections as usize,
            min_send_rate: args.min_send_rate,
        };
        let store = open_store(&root, true).await?;
        let server = Arc::new(MirrorServer::new(store, directory, args.redirect)?);
        let listener = TcpListener::bind(&args.listen).await.map_err(|e| {
            Error::config("--listen", format!("cannot listen on {}: {e}", args.listen))
        })?;
        stop_on_signals(&shutdown, ": finishing the responses in flight");
        server.serve(listener, limits, shutdown.subscribe()).await
    }
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
