//! TLS for the store's connections, with libpq's `sslmode` and `sslrootcert` (see [`Tls`]).
//!
//! The adapter between tokio-postgres and rustls (ring provider) lives here: the published
//! adapter crate brings a second syn major into the graph.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode`: whether a connection is encrypted, and what of the server's certificate
/// is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server accepts it, else a plain connection (the default, as in libpq). The
    /// certificate is not checked, unless root certificates are given: then its chain is, and
    /// a certificate that fails the check fails the connection (there is no plain retry).
    #[default]
    Prefer,
    /// TLS or no connection. The certificate is not checked, unless root certificates are
    /// given: then its chain is (libpq's `verify-ca`).
    Require,
    /// TLS, and the certificate must chain to a trusted root; its host name is not checked.
    VerifyCa,
    /// TLS, the certificate must chain to a trusted root and be valid for the host name the
    /// connection names.
    VerifyFull,
}

impl SslMode {
    /// The `sslmode` value: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(TlsError::InvalidOption {
                    option: "sslmode",
                    reason: format!(
                        "`{s}` is not one of disable, prefer, require, verify-ca, verify-full"
                    ),
                });
            }
        })
    }
}

/// Where the trusted root certificates come from.
#[derive(Clone)]
enum Roots {
    /// The platform's trusted roots (`sslrootcert=system`).
    System,
    /// A PEM file of one or more certificates (`sslrootcert=<path>`).
    File(PathBuf),
    /// PEM text held in memory.
    Pem(Arc<[u8]>),
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
        }
    }
}

/// The TLS settings of a [`PostgresConfig`](super::PostgresConfig): an [`SslMode`] and,
/// optionally, the root certificates to trust.
///
/// Parsed from the connection URL's `sslmode` and `sslrootcert` parameters, or set in code:
///
/// ```no_run
/// # async fn run() -> Result<(), cqrs_runtime::store::StoreError> {
/// use cqrs_runtime::postgres::{PostgresConfig, Tls};
///
/// let store = PostgresConfig::new("postgres://app@db.example.com/app")?
///     .tls(Tls::verify_full().root_cert("/etc/ssl/db-ca.pem"))
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
///
/// Without root certificates, `verify-ca` and `verify-full` trust the platform's roots.
/// Unlike libpq, `~/.postgresql/root.crt` is not read: name the file.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    mode: SslMode,
    roots: Option<Roots>,
}

impl Tls {
    /// `sslmode=disable`: plain connections.
    pub fn disable() -> Self {
        Self::mode(SslMode::Disable)
    }

    /// `sslmode=prefer` (the default): TLS when the server accepts it, else plain.
    pub fn prefer() -> Self {
        Self::mode(SslMode::Prefer)
    }

    /// `sslmode=require`: TLS, the certificate unchecked unless root certificates are given.
    pub fn require() -> Self {
        Self::mode(SslMode::Require)
    }

    /// `sslmode=verify-ca`: TLS, the certificate chains to a trusted root.
    pub fn verify_ca() -> Self {
        Self::mode(SslMode::VerifyCa)
    }

    /// `sslmode=verify-full`: TLS, the certificate chains to a trusted root and names the host.
    pub fn verify_full() -> Self {
        Self::mode(SslMode::VerifyFull)
    }

    /// These settings with this [`SslMode`].
    pub fn mode(mode: SslMode) -> Self {
        Self { mode, roots: None }
    }

    /// Trusts the certificates of this PEM file (`sslrootcert=<path>`), read when the store
    /// opens, instead of the platform's roots.
    pub fn root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.roots = Some(Roots::File(path.into()));
        self
    }

    /// Trusts the certificates of this PEM text, instead of the platform's roots.
    pub fn root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots = Some(Roots::Pem(pem.into().into()));
        self
    }

    /// Trusts the platform's roots (`sslrootcert=system`; also what `verify-ca` and
    /// `verify-full` do when no root certificate is given).
    pub fn system_roots(mut self) -> Self {
        self.roots = Some(Roots::System);
        self
    }

    /// The [`SslMode`].
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// What is checked of the server's certificate.
    fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => Check::Full,
            (SslMode::VerifyCa, _) | (SslMode::Prefer | SslMode::Require, Some(_)) => Check::Chain,
            (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => Check::Nothing,
        }
    }

    /// The driver's own mode: it handles the `SSLRequest` exchange, this module the handshake.
    pub(super) fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    /// Builds the connector: reads the root certificates, builds the rustls configuration.
    pub(super) async fn connector(&self) -> Result<MakeRustls, TlsError> {
        if self.mode == SslMode::Disable {
            return Ok(MakeRustls { config: None });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let check = self.check();
        let roots = match check {
            Check::Nothing => None,
            Check::Chain | Check::Full => Some(Arc::new(
                load_roots(self.roots.clone().unwrap_or(Roots::System)).await?,
            )),
        };
        let verifier = Verifier {
            check: match (check, roots) {
                (Check::Full, Some(roots)) => VerifierCheck::Full(
                    WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                        .build()
                        .map_err(|e| TlsError::Config {
                            reason: e.to_string(),
                        })?,
                ),
                (Check::Chain, Some(roots)) => VerifierCheck::Chain(roots),
                _ => VerifierCheck::Nothing,
            },
            algorithms,
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // What libpq 17 sends; servers before 17 ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls {
            config: Some(Arc::new(config)),
        })
    }
}

/// The `sslmode` and `sslrootcert` parameters taken out of a connection string, and the rest
/// for the driver (which knows neither `verify-*` nor `sslrootcert`).
pub(super) fn split_url(url: &str) -> Result<(String, Tls), TlsError> {
    let (rest, mode, root) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_uri(url)?
    } else {
        split_key_values(url)
    };
    let roots = root.map(|root| match root.as_str() {
        "system" => Roots::System,
        _ => Roots::File(PathBuf::from(root)),
    });
    let mode = match mode {
        Some(mode) => mode.parse()?,
        // As libpq: `sslrootcert=system` alone means `verify-full`.
        None if matches!(roots, Some(Roots::System)) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    Ok((rest, Tls { mode, roots }))
}

type Split = (String, Option<String>, Option<String>);

/// A URL: query parameters, percent-encoded.
fn split_uri(url: &str) -> Result<Split, TlsError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str, option: &'static str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|e| TlsError::InvalidOption {
                    option,
                    reason: e.to_string(),
                })
        };
        // A key that does not decode is not one of these: the driver reports it.
        match decode(key, "sslmode").ok().as_deref() {
            Some("sslmode") => mode = Some(decode(value, "sslmode")?),
            Some("sslrootcert") => root = Some(decode(value, "sslrootcert")?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

/// A key-value string (`host=db sslmode=verify-full`): values unquoted or in single quotes,
/// with backslash escapes. A string that does not tokenize is left to the driver's parser.
fn split_key_values(text: &str) -> Split {
    let mut rest = String::new();
    let (mut mode, mut root) = (None, None);
    let mut chars = text.char_indices().peekable();
    let mut kept_from = 0;
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return (text.to_owned(), None, None);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return (text.to_owned(), None, None);
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => continue,
        }
        rest.push_str(text.get(kept_from..start).unwrap_or_default());
        kept_from = end;
    }
    rest.push_str(text.get(kept_from..).unwrap_or_default());
    (rest, mode, root)
}

/// Reads the trusted roots (file reads on the blocking pool).
async fn load_roots(roots: Roots) -> Result<RootCertStore, TlsError> {
    let task = tokio::task::spawn_blocking(move || load_roots_now(&roots));
    task.await.map_err(|e| TlsError::Config {
        reason: e.to_string(),
    })?
}

fn load_roots_now(roots: &Roots) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(TlsError::NoSystemRoots {
                    reason: if errors.is_empty() {
                        "none found".to_owned()
                    } else {
                        errors.join("; ")
                    },
                });
            }
        }
        Roots::File(path) => {
            let bad = |reason: String| TlsError::RootCert {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            add_pem(&mut store, &pem).map_err(bad)?;
        }
        Roots::Pem(pem) => {
            add_pem(&mut store, pem).map_err(|reason| TlsError::RootCert {
                path: PathBuf::from("<PEM text>"),
                reason,
            })?;
        }
    }
    Ok(store)
}

fn add_pem(store: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("a certificate cannot be used as a root: {e}"))?;
    }
    if store.is_empty() {
        return Err("holds no certificate".to_owned());
    }
    Ok(())
}

/// Why a connection could not be secured as its [`SslMode`] asks, or why the TLS settings
/// are invalid. A [`StoreError::Backend`](crate::store::StoreError::Backend) (or
/// [`Unavailable`](crate::store::StoreError::Unavailable) for [`TlsError::Io`]) carries it:
/// `error.source()` downcasts to it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// An `sslmode` or `sslrootcert` value that cannot be used.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The parameter.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The root certificate file cannot be read or holds no usable certificate.
    #[error("TLS root certificates `{}`: {reason}", path.display())]
    RootCert {
        /// The file (`sslrootcert`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No root certificate was given and the platform has none to trust.
    #[error(
        "TLS: no trusted root certificates on this system ({reason}); name a CA file with sslrootcert"
    )]
    NoSystemRoots {
        /// What loading them reported.
        reason: String,
    },
    /// The rustls configuration could not be built.
    #[error("TLS configuration: {reason}")]
    Config {
        /// What rustls said.
        reason: String,
    },
    /// The server does not accept TLS (its `ssl` setting is off) and the mode requires it.
    #[error(
        "the server does not accept TLS, which sslmode={mode} requires (sslmode=prefer accepts a plain connection)"
    )]
    Refused {
        /// The mode asked for.
        mode: SslMode,
    },
    /// The certificate chains to a trusted root but is not valid for the host name (only
    /// `verify-full` checks the name).
    #[error(
        "the server's TLS certificate is not valid for the host `{host}` (it names {}); connect with a name it lists, or use sslmode=verify-ca",
        if names.is_empty() { "other hosts".to_owned() } else { names.join(", ") }
    )]
    HostMismatch {
        /// The host name the connection used.
        host: String,
        /// The names the certificate lists (DNS names and IP addresses), when known.
        names: Vec<String>,
    },
    /// The certificate does not chain to a trusted root, or is expired, revoked or malformed.
    #[error(
        "the server's TLS certificate (host `{host}`) is not trusted: {reason} (check sslrootcert)"
    )]
    Untrusted {
        /// The host name the connection used.
        host: String,
        /// What rustls said.
        reason: String,
    },
    /// The host name cannot be used for TLS.
    #[error("`{host}` is not a host name TLS can check: {reason}")]
    InvalidHostName {
        /// The host.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The handshake failed for another reason (no common protocol version or cipher suite).
    #[error("TLS handshake with `{host}` failed: {reason}")]
    Handshake {
        /// The host name the connection used.
        host: String,
        /// What rustls said.
        reason: String,
    },
    /// The connection broke during the handshake (worth retrying).
    #[error("the connection to `{host}` broke during the TLS handshake: {reason}")]
    Io {
        /// The host name the connection used.
        host: String,
        /// The I/O error.
        reason: String,
    },
}

impl TlsError {
    /// Whether retrying may succeed.
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, Self::Io { .. })
    }

    /// The handshake's error, typed by what failed.
    fn from_handshake(host: &str, error: io::Error) -> Self {
        let host = host.to_owned();
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match rustls_error {
            Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                Self::HostMismatch {
                    host,
                    names: Vec::new(),
                }
            }
            Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) => Self::HostMismatch {
                host,
                names: presented.iter().map(|name| bare_name(name)).collect(),
            },
            Some(e @ rustls::Error::InvalidCertificate(_)) => Self::Untrusted {
                host,
                reason: e.to_string(),
            },
            Some(e) => Self::Handshake {
                host,
                reason: e.to_string(),
            },
            None => Self::Io {
                host,
                reason: error.to_string(),
            },
        }
    }
}

/// `localhost` for rustls's `DnsName("localhost")`, `127.0.0.1` for `IpAddress(127.0.0.1)`.
fn bare_name(name: &str) -> String {
    let inner = ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix)?.strip_suffix(')'));
    inner
        .map_or(name, |inner| inner.trim_matches('"'))
        .to_owned()
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    Full,
}

enum VerifierCheck {
    Nothing,
    Chain(Arc<RootCertStore>),
    Full(Arc<WebPkiServerVerifier>),
}

/// Checks the certificate as the mode asks; the handshake's signatures are always checked
/// (they prove the server holds the certificate's key).
struct Verifier {
    check: VerifierCheck,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let check = match self.check {
            VerifierCheck::Nothing => "nothing",
            VerifierCheck::Chain(_) => "chain",
            VerifierCheck::Full(_) => "chain and host name",
        };
        f.debug_struct("Verifier").field("check", &check).finish()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            VerifierCheck::Nothing => {}
            VerifierCheck::Chain(roots) => {
                let cert = ParsedCertificate::try_from(end_entity)?;
                verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    roots,
                    intermediates,
                    now,
                    self.algorithms.all,
                )?;
            }
            VerifierCheck::Full(webpki) => {
                webpki.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                )?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS factory over rustls; `None` for `sslmode=disable`.
#[derive(Clone)]
pub(super) struct MakeRustls {
    config: Option<Arc<ClientConfig>>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, TlsError> {
        // Parsed at the handshake: the driver asks for a connector for Unix sockets too.
        Ok(RustlsConnect {
            config: self.config.clone(),
            host: host.to_owned(),
        })
    }
}

/// One TLS handshake to one host.
pub(super) struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    host: String,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, TlsError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.config else {
                return Err(TlsError::Config {
                    reason: "TLS is disabled (sslmode=disable)".to_owned(),
                });
            };
            let name =
                ServerName::try_from(self.host.clone()).map_err(|e| TlsError::InvalidHostName {
                    host: self.host.clone(),
                    reason: e.to_string(),
                })?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| TlsError::from_handshake(&self.host, e))?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A TLS session over a driver socket.
pub(super) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls_server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// RFC 5929 `tls-server-end-point`: the certificate's hash, with the hash of its signature
/// algorithm (SHA-256 for MD5 and SHA-1). `None` where the algorithm names no single hash
/// (Ed25519, RSA-PSS): as the server, which then offers no channel binding.
fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (certificate, _) = der(cert, 0x30)?;
    let (_, after_tbs) = der(certificate, 0x30)?;
    let (algorithm, _) = der(after_tbs, 0x30)?;
    let (oid, _) = der(algorithm, 0x06)?;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    let digest = match oid.split_last() {
        // md5WithRSAEncryption, sha1WithRSAEncryption, sha256WithRSAEncryption
        Some((4 | 5 | 11, head)) if head == RSA => &ring::digest::SHA256,
        Some((12, head)) if head == RSA => &ring::digest::SHA384,
        Some((13, head)) if head == RSA => &ring::digest::SHA512,
        Some((2, head)) if head == ECDSA_SHA2 => &ring::digest::SHA256,
        Some((3, head)) if head == ECDSA_SHA2 => &ring::digest::SHA384,
        Some((4, head)) if head == ECDSA_SHA2 => &ring::digest::SHA512,
        _ if oid == ECDSA_SHA1 => &ring::digest::SHA256,
        _ => return None,
    };
    Some(ring::digest::digest(digest, cert).as_ref().to_vec())
}

/// One DER element with this tag at the start of `input`: its contents and what follows.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, mut rest) = rest.split_first()?;
    let len = if len < 0x80 {
        usize::from(len)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    rest.split_at_checked(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, SslMode, Option<String>) {
        let (rest, tls) = split_url(url).expect("valid");
        let root = tls.roots.map(|r| format!("{r:?}"));
        (rest, tls.mode, root)
    }

    #[test]
    fn url_parameters_are_taken_out() {
        assert_eq!(
            split(
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt&application_name=x"
            ),
            (
                "postgres://u@h/db?application_name=x".to_owned(),
                SslMode::VerifyFull,
                Some("File(\"/tmp/ca.crt\")".to_owned())
            )
        );
        assert_eq!(
            split("postgresql://u@h/db?sslmode=require"),
            ("postgresql://u@h/db".to_owned(), SslMode::Require, None)
        );
        assert_eq!(
            split("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), SslMode::Prefer, None)
        );
        assert_eq!(
            split("postgres://u@h/db?sslrootcert=system").1,
            SslMode::VerifyFull
        );
    }

    #[test]
    fn key_value_parameters_are_taken_out() {
        assert_eq!(
            split("host=h sslmode = verify-ca user=u sslrootcert='/a b/c\\'d.pem' dbname=x"),
            (
                "host=h user=u dbname=x".to_owned(),
                SslMode::VerifyCa,
                Some("File(\"/a b/c'd.pem\")".to_owned())
            )
        );
        assert_eq!(
            split("host=h user=u"),
            ("host=h user=u".to_owned(), SslMode::Prefer, None)
        );
    }

    #[test]
    fn unknown_modes_are_refused() {
        let error = split_url("postgres://h/db?sslmode=allow").expect_err("invalid");
        assert!(
            error.to_string().contains("`allow` is not one of"),
            "{error}"
        );
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        // SEQUENCE { SEQUENCE {}, SEQUENCE { OID }, BIT STRING }
        let cert = |oid: &[u8]| {
            let mut alg = vec![0x06, u8::try_from(oid.len()).expect("short")];
            alg.extend_from_slice(oid);
            let mut body = vec![0x30, 0x00, 0x30, u8::try_from(alg.len()).expect("short")];
            body.extend(alg);
            body.extend([0x03, 0x01, 0x00]);
            let mut cert = vec![0x30, u8::try_from(body.len()).expect("short")];
            cert.extend(body);
            cert
        };
        let sha384_rsa = cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 12]);
        assert_eq!(tls_server_end_point(&sha384_rsa).map(|h| h.len()), Some(48));
        let sha1_rsa = cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 5]);
        assert_eq!(tls_server_end_point(&sha1_rsa).map(|h| h.len()), Some(32));
        let ecdsa_sha512 = cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 4]);
        assert_eq!(
            tls_server_end_point(&ecdsa_sha512).map(|h| h.len()),
            Some(64)
        );
        let ed25519 = cert(&[0x2b, 0x65, 0x70]);
        assert_eq!(tls_server_end_point(&ed25519), None);
        assert_eq!(tls_server_end_point(&[0x30, 0x05, 0x30]), None);
    }
}
