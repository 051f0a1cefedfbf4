//! `bottlesync serve`: the mirror over HTTP or HTTPS for brew clients (see
//! `bottlesync_adapters::http::server`), until SIGTERM or Ctrl-C, which
//! let the responses in flight finish (a second signal abandons them).
//! With TLS, SIGHUP reads the certificate and key again.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bottlesync_adapters::http::ConnectionLimits;
use bottlesync_adapters::http::server::MirrorServer;
use bottlesync_adapters::http::tls::ReloadingCert;
use bottlesync_adapters::wiring::open_store;
use bottlesync_core::Error;
use bottlesync_core::model::location::Location;
use bottlesync_core::shutdown::ShutdownSignal;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

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
        // Checked before anything else is opened: a bad pair changes nothing.
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(ReloadingCert::load(cert, key)?)),
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
        if let Some(tls) = &tls {
            reload_on_sighup(tls.clone());
        }
        server
            .serve(listener, tls, limits, shutdown.subscribe())
            .await
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

/// SIGHUP: the certificate and key read again (a renewed certificate
/// without a restart); if they cannot be used, the ones in use stay.
fn reload_on_sighup(tls: Arc<ReloadingCert>) {
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert = %tls.cert_file().display(),
                    "SIGHUP: reloaded the TLS certificate and key"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: cannot reload the TLS certificate; still serving the one loaded before"
                ),
            }
        }
    });
}
