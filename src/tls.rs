//! Transport security: the server terminates TLS itself (shared/DESIGN.md §6).
//!
//! - [`server_config`] turns the settings into a rustls [`ServerConfig`]: either the PEM files
//!   given by `--tls-cert` / `--tls-key`, or with `--tls-self-signed` a certificate generated
//!   once by [`self_signed`] and kept beside the database, so a LAN deployment needs no other
//!   tool. Bad files stop start-up with a [`TlsError`] naming the file and the problem.
//! - [`transport_security`] is the outermost middleware: over TLS it adds HSTS; on the plain
//!   HTTP redirect listener (`--http-redirect-bind`) it answers every request with a 308 to
//!   the same path on the HTTPS port.
//! - [`CertResolver`] serves the certificate and reloads it from its files on SIGHUP
//!   ([`reload_on_sighup`]), so a renewed certificate needs no restart.
//!
//! HTTP/2 and HTTP/1.1 share the TLS port through ALPN: actix-web's rustls listener advertises
//! `h2` then `http/1.1` on the config it is given, so [`server_config`] sets no ALPN itself
//! (setting it here too would only repeat both names in the handshake).

use std::{
    fmt::Write as _,
    fs,
    io::{self, Write as _},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderValue},
    middleware::Next,
    HttpResponse,
};
use rustls::{
    crypto::{ring, CryptoProvider},
    pki_types::{CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// File name of the generated self-signed certificate, beside the database file.
pub const SELF_SIGNED_CERT_FILE: &str = "tertulia-cert.pem";

/// File name of the generated self-signed certificate's private key (mode 0600).
pub const SELF_SIGNED_KEY_FILE: &str = "tertulia-key.pem";

/// How long a generated certificate is valid. Apple platforms refuse TLS server certificates
/// valid for more than 825 days even when the user trusts them, so stay well below that.
const SELF_SIGNED_VALIDITY_DAYS: u64 = 730;

/// A generated certificate this close to its end is replaced at start-up.
const SELF_SIGNED_RENEW_BEFORE_DAYS: u64 = 30;

/// The HSTS policy sent over TLS: one year, this host only (LAN hosts have no subdomains to
/// vouch for). Browsers ignore it on connections with certificate errors (RFC 6797 §8.1), so a
/// not-yet-trusted self-signed certificate can still be clicked through.
pub const HSTS_VALUE: &str = "max-age=31536000";

/// Why TLS could not be set up; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate file '{}': {source}", path.display())]
    ReadCert { path: PathBuf, source: io::Error },
    #[error("cannot read TLS key file '{}': {source}", path.display())]
    ReadKey { path: PathBuf, source: io::Error },
    #[error("TLS certificate file '{}' is not valid PEM: {problem}", path.display())]
    BadCert { path: PathBuf, problem: String },
    #[error("TLS key file '{}' is not a valid PEM private key: {problem}", path.display())]
    BadKey { path: PathBuf, problem: String },
    #[error("TLS key file '{}' cannot be used with certificate '{}': {problem}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        problem: String,
    },
    #[error("cannot write the self-signed certificate to '{}': {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("found '{}' but not '{}': delete it to have both generated again", present.display(), missing.display())]
    HalfPair { present: PathBuf, missing: PathBuf },
}

/// A certificate and key ready to serve, with what the operator should be told about them.
pub struct TlsSetup {
    /// The rustls configuration (ring crypto, safe protocol versions, no client auth), whose
    /// certificate comes from [`TlsSetup::resolver`].
    pub config: ServerConfig,
    /// Serves the current certificate and can reload it from its files.
    pub resolver: Arc<CertResolver>,
    /// Where the certificate came from.
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate (DER), as colon-separated hex, the way browsers show it.
    pub fingerprint: String,
}

/// Builds the TLS configuration the settings ask for; `None` when TLS is off.
pub fn server_config(settings: &Settings) -> Result<Option<TlsSetup>, TlsError> {
    let (cert, key) = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ if settings.tls_self_signed => self_signed(settings)?,
        _ => return Ok(None),
    };
    let setup = load(&cert, &key)?;
    if settings.tls_self_signed {
        let line = format!(
            "self-signed certificate {} — SHA-256 fingerprint {}",
            setup.cert_path.display(),
            setup.fingerprint
        );
        log::info!("{line}");
        // Also on standard output: the operator reads this aloud to LAN users who verify it.
        println!("{line}");
    }
    Ok(Some(setup))
}

/// Loads a PEM certificate chain and private key into a rustls configuration.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<TlsSetup, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let (key, fingerprint) = certified_key(cert_path, key_path, &provider)?;
    let resolver = Arc::new(CertResolver {
        current: RwLock::new(key),
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        provider: Arc::clone(&provider),
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
    Ok(TlsSetup {
        config,
        resolver,
        cert_path: cert_path.to_owned(),
        fingerprint,
    })
}

/// Reads and checks a certificate chain and its key; returns them with the leaf's fingerprint.
fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let cert_pem = fs::read(cert_path).map_err(|source| TlsError::ReadCert {
        path: cert_path.to_owned(),
        source,
    })?;
    let key_pem = fs::read(key_path).map_err(|source| TlsError::ReadKey {
        path: key_path.to_owned(),
        source,
    })?;
    let bad_cert = |problem: String| TlsError::BadCert {
        path: cert_path.to_owned(),
        problem,
    };
    let bad_key = |problem: String| TlsError::BadKey {
        path: key_path.to_owned(),
        problem,
    };

    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| bad_cert(e.to_string()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| bad_cert("no CERTIFICATE block found".to_owned()))?;
    let fingerprint = fingerprint(leaf);

    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| bad_key(e.to_string()))?
        .ok_or_else(|| {
            bad_key("no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".to_owned())
        })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        // ring can always tell; an unknown answer would not be the files' fault.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((Arc::new(certified), fingerprint))
        }
        Err(e) => Err(TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            problem: e.to_string(),
        }),
    }
}

/// Hands every handshake the current certificate; [`CertResolver::reload`] swaps it for
/// what the files hold now, so a renewed certificate needs no restart.
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a complete key: swapping an Arc cannot half-happen.
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(&current))
    }
}

impl CertResolver {
    /// Reads the files again; on success new handshakes get the new certificate (returns its
    /// fingerprint), on failure the old one stays in use.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (key, fingerprint) = certified_key(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(fingerprint)
    }
}

/// Reloads the certificate on every SIGHUP (a certbot deploy hook: `kill -HUP <pid>`).
/// The handler is installed before this returns, so a SIGHUP from then on never kills the
/// server; the returned future does the reloading and never ends.
#[cfg(unix)]
pub fn reload_on_sighup(
    resolver: Arc<CertResolver>,
) -> io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            match resolver.reload() {
                Ok(fingerprint) => log::info!(
                    "SIGHUP: reloaded TLS certificate {} (SHA-256 {fingerprint})",
                    resolver.cert_path.display()
                ),
                Err(e) => log::error!("SIGHUP: kept the current TLS certificate: {e}"),
            }
        }
    })
}

/// SHA-256 of a DER certificate as `AB:CD:…`.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The self-signed certificate and key beside the database: reused when present and not close
/// to expiry, generated (once) otherwise. Returns their paths.
pub fn self_signed(settings: &Settings) -> Result<(PathBuf, PathBuf), TlsError> {
    // Beside a SQLite file; in the working directory for a PostgreSQL URL.
    let beside = match crate::db::Backend::of(&settings.database_url) {
        crate::db::Backend::Sqlite => settings.database_url.as_str(),
        crate::db::Backend::Postgres => "",
    };
    let dir = Path::new(beside)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
    let key_path = dir.join(SELF_SIGNED_KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) if !needs_renewal(&cert_path) => return Ok((cert_path, key_path)),
        (true, true) => log::info!(
            "self-signed certificate {} is near its end; generating a new one",
            cert_path.display()
        ),
        (true, false) => {
            return Err(TlsError::HalfPair {
                present: cert_path,
                missing: key_path,
            })
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                present: key_path,
                missing: cert_path,
            })
        }
        (false, false) => {}
    }

    let names = subject_alt_names(settings);
    log::info!(
        "generating a self-signed certificate for {}",
        names.join(", ")
    );
    let (cert_pem, key_pem) = generate(names)?;
    write_file(&key_path, key_pem.as_bytes(), 0o600)?;
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    Ok((cert_path, key_path))
}

/// Whether a generated certificate file is older than its validity less the renewal margin.
/// Its modification time is when it was generated, which spares parsing X.509 here.
fn needs_renewal(cert_path: &Path) -> bool {
    let keep = Duration::from_secs(
        (SELF_SIGNED_VALIDITY_DAYS - SELF_SIGNED_RENEW_BEFORE_DAYS) * 24 * 3600,
    );
    fs::metadata(cert_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|written| written.elapsed().ok())
        .is_some_and(|age| age > keep)
}

/// The names a LAN client may use to reach this machine: localhost and the loopback
/// addresses, the host name (and its mDNS `.local` form), the bound address if specific, and
/// the machine's other addresses as `hostname -I` lists them (skipped where unavailable).
fn subject_alt_names(settings: &Settings) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut add = |name: String| {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    if let Some(host) = host_name() {
        if !host.contains('.') {
            add(format!("{host}.local"));
        }
        add(host);
    }
    if !settings.bind.ip().is_unspecified() {
        add(settings.bind.ip().to_string());
    }
    for ip in local_addresses() {
        add(ip.to_string());
    }
    names
}

/// This machine's host name, if it is usable as a DNS name.
fn host_name() -> Option<String> {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let host = raw.trim().to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then_some(host)
}

/// The machine's non-loopback addresses, from `hostname -I` (Linux); none elsewhere.
fn local_addresses() -> Vec<IpAddr> {
    std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|word| word.parse::<IpAddr>().ok())
                .filter(|ip| !ip.is_loopback())
                .collect()
        })
        .unwrap_or_default()
}

/// Generates a certificate for `names`, valid from yesterday for [`SELF_SIGNED_VALIDITY_DAYS`];
/// returns (certificate PEM, key PEM).
fn generate(names: Vec<String>) -> Result<(String, String), TlsError> {
    let failed = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(failed)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "Tertulia self-signed");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = SystemTime::now();
    let (y, m, d) = civil_date(now - Duration::from_secs(24 * 3600));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_date(now + Duration::from_secs(SELF_SIGNED_VALIDITY_DAYS * 24 * 3600));
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key_pair = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key_pair).map_err(failed)?;
    Ok((cert.pem(), key_pair.serialize_pem()))
}

/// The UTC calendar date of a time (Howard Hinnant's days-to-civil algorithm).
fn civil_date(time: SystemTime) -> (i32, u8, u8) {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Day 1..=31 and month 1..=12 by construction; the year fits i32 for any SystemTime.
    (
        i32::try_from(year).unwrap_or(i32::MAX),
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// Writes a new file with the given Unix mode (the key must never be world-readable, not even
/// for a moment, so the mode is set at creation).
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let failed = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Outermost middleware: adds HSTS to responses over TLS, and when TLS is on answers requests
/// that arrive on the plain HTTP (redirect) listener with a 308 to the HTTPS URL.
///
/// `https_port` is the TLS listener's port; `None` means TLS is off and requests pass through.
pub async fn transport_security(
    https_port: Option<u16>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(https_port) = https_port else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if !req.app_config().secure() {
        let response = redirect_to_https(&req, https_port);
        return Ok(req.into_response(response));
    }
    let mut res = next.call(req).await?;
    res.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS_VALUE),
    );
    Ok(res.map_into_boxed_body())
}

/// `308 Permanent Redirect` to the same path and query on the HTTPS port; the host is the one
/// the client asked for (its `Host` header without the port). A missing or strange host gets
/// a 400 rather than a redirect somewhere unintended.
fn redirect_to_https(req: &ServiceRequest, https_port: u16) -> HttpResponse {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().host().map(str::to_owned))
        .and_then(|h| host_without_port(&h));
    let Some(host) = host else {
        return crate::error::error_response(
            crate::error::ErrorCode::BadRequest,
            "this port only redirects to HTTPS and needs a Host header",
        );
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `example.org:80` → `example.org`, `[::1]:80` → `[::1]`; `None` unless the host is made of
/// DNS-name characters or is a bracketed IPv6 address.
fn host_without_port(host: &str) -> Option<String> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(format!("[{v6}]"));
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid.then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_odd_hosts_are_refused() {
        assert_eq!(
            host_without_port("Example.org:8080").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            host_without_port("192.168.1.5").as_deref(),
            Some("192.168.1.5")
        );
        assert_eq!(host_without_port("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_without_port("evil.org/x:80"), None);
        assert_eq!(host_without_port("[nope]:80"), None);
        assert_eq!(host_without_port(""), None);
    }

    #[test]
    fn civil_dates_match_the_calendar() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(civil_date(at(0)), (1970, 1, 1));
        assert_eq!(civil_date(at(951_782_400)), (2000, 2, 29));
        assert_eq!(civil_date(at(1_795_651_200)), (2026, 11, 26));
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        let fp = fingerprint(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF"));
    }
}
