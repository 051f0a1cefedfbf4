//! `serve --tls-cert FILE --tls-key FILE`: the certificate chain and key,
//! read and checked (the key must match the certificate) before anything
//! is served, and read again on [`ReloadingCert::reload`] (SIGHUP): a new
//! pair takes over for new connections only once it loaded and matched;
//! until then the one in use stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

use bottlesync_core::{Error, Result};

/// The certificate `serve` presents, replaceable while it serves.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Reads `cert_file` (PEM, the chain, leaf first) and `key_file` (PEM,
    /// PKCS#8, PKCS#1 or SEC1); an error names the flag at fault.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let current = read_pair(cert_file, key_file, &provider)?;
        Ok(ReloadingCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again; on any problem keeps the pair in use and
    /// says why.
    pub fn reload(&self) -> Result<()> {
        let pair = read_pair(&self.cert_file, &self.key_file, &self.provider)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| Error::config("--tls-cert", "the certificate in use is poisoned"))?;
        *current = Arc::new(pair);
        Ok(())
    }

    /// The file of the certificate (for log lines).
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, this certificate.
    pub(crate) fn server_config(self: Arc<Self>) -> Arc<ServerConfig> {
        let provider = self.provider.clone();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.clone())
    }
}

fn read_pair(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let shown = cert_file.display();
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::config(
                "--tls-cert",
                format!("cannot read {shown}: {}", pem_problem(e)),
            )
        })?;
    if chain.is_empty() {
        return Err(Error::config(
            "--tls-cert",
            format!("{shown} has no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        Error::config(
            "--tls-key",
            format!(
                "cannot read a private key from {}: {}",
                key_file.display(),
                pem_problem(e)
            ),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Error::config(
            "--tls-key",
            format!(
                "{} is not the key of the certificate in {shown} (--tls-cert)",
                key_file.display()
            ),
        ),
        other => Error::config(
            "--tls-key",
            format!("cannot use {} with {shown}: {other}", key_file.display()),
        ),
    })
}

fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of that kind in it".into(),
        other => other.to_string(),
    }
}
