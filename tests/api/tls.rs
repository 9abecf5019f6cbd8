//! HTTPS: HTTP/2 by ALPN, the redirect port, HSTS, Secure cookies, certificate errors and the
//! self-signed LAN certificate.

use std::{path::Path, sync::Arc, time::Duration};

use actix_web::{
    dev::ServerHandle,
    http::{header, StatusCode, Version},
};
use rustls::{crypto::ring, pki_types::CertificateDer, ClientConfig, RootCertStore};
use serde_json::{json, Value};
use tempfile::TempDir;
use tertulia::{config::Settings, startup::Application, tls};

use crate::helpers::{spawn_app, sqlite_settings, test_settings, PASSWORD};

/// A server on HTTPS with a certificate made for the test, plus its plain redirect port.
struct TlsApp {
    port: u16,
    redirect_port: Option<u16>,
    /// The certificate the server presents, for the client to trust.
    cert: CertificateDer<'static>,
    handle: ServerHandle,
    dir: TempDir,
}

impl TlsApp {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for TlsApp {
    fn drop(&mut self) {
        // Not awaited: the test's runtime ends with the test anyway.
        drop(self.handle.stop(false));
    }
}

/// Writes a certificate for localhost and 127.0.0.1 into `dir`; returns (cert, key) paths.
fn write_test_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate generated");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("cert written");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("key written");
    (cert, key)
}

/// The DER of the first certificate in a PEM file.
fn read_cert(path: &Path) -> CertificateDer<'static> {
    let pem = std::fs::read(path).expect("cert readable");
    let first = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .expect("one certificate")
        .expect("valid PEM");
    first
}

/// Starts a TLS server with a fresh test certificate and a redirect port.
async fn spawn_tls_app() -> TlsApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = write_test_cert(dir.path());
    let mut settings = test_settings(&dir);
    settings.tls_cert = Some(cert.clone());
    settings.tls_key = Some(key);
    settings.http_redirect_bind = Some("127.0.0.1:0".parse().expect("address"));
    start(settings, read_cert(&cert), dir).await
}

async fn start(settings: Settings, cert: CertificateDer<'static>, dir: TempDir) -> TlsApp {
    let app = Application::build(settings).await.expect("server builds");
    let (port, redirect_port, handle) = (app.port(), app.redirect_port(), app.handle());
    actix_web::rt::spawn(app.run_until_stopped());
    TlsApp {
        port,
        redirect_port,
        cert,
        handle,
        dir,
    }
}

/// A rustls client configuration that trusts only `cert` and offers `alpn`.
fn client_config(cert: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("test cert is a valid root");
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// An HTTPS client trusting `cert`, offering `alpn`, never following redirects.
fn https_client(cert: &CertificateDer<'static>, alpn: &[&[u8]]) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(client_config(cert, alpn)))
        .timeout(Duration::from_secs(30))
        .disable_redirects()
        .finish()
}

/// Sends a request; returns the HTTP version, status, headers and JSON body.
async fn send(
    req: awc::ClientRequest,
    body: Option<Value>,
) -> (Version, StatusCode, header::HeaderMap, Value) {
    let mut res = match body {
        Some(body) => req.send_json(&body).await,
        None => req.send().await,
    }
    .expect("request sent");
    let bytes = res.body().await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (res.version(), res.status(), res.headers().clone(), json)
}

const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];

#[actix_web::test]
async fn an_https_request_negotiates_http2_and_gets_the_same_answers_as_http1() {
    let app = spawn_tls_app().await;
    let h2 = https_client(&app.cert, H2_AND_H1);
    let h1 = https_client(&app.cert, H1_ONLY);

    let (version, status, _, body) = send(
        h2.post(app.url("/api/register")),
        Some(json!({"nickname": "ana", "password": PASSWORD, "themes": ["Jogos"]})),
    )
    .await;
    assert_eq!(version, Version::HTTP_2, "ALPN must pick h2");
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (version, status, _, body) = send(
        h2.post(app.url("/api/login")),
        Some(json!({"nickname": "ana", "password": PASSWORD})),
    )
    .await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();

    let (v2, s2, _, me2) = send(h2.get(app.url("/api/me")).bearer_auth(&token), None).await;
    let (v1, s1, _, me1) = send(h1.get(app.url("/api/me")).bearer_auth(&token), None).await;
    assert_eq!((v2, v1), (Version::HTTP_2, Version::HTTP_11));
    assert_eq!((s2, s1), (StatusCode::OK, StatusCode::OK));
    assert_eq!(me2, me1, "HTTP/2 and HTTP/1.1 answer alike");
    assert_eq!(me2["nickname"], "ana");

    let (_, s2, _, e2) = send(h2.get(app.url("/api/me")), None).await;
    let (_, s1, _, e1) = send(h1.get(app.url("/api/me")), None).await;
    assert_eq!(
        (s2, s1),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(e2, e1, "errors are the same JSON on both versions");
}

#[actix_web::test]
async fn login_over_tls_sets_a_secure_httponly_cookie() {
    let app = spawn_tls_app().await;
    let client = https_client(&app.cert, H2_AND_H1);
    send(
        client.post(app.url("/api/register")),
        Some(json!({"nickname": "bia", "password": PASSWORD})),
    )
    .await;
    let (_, status, headers, _) = send(
        client.post(app.url("/api/login")),
        Some(json!({"nickname": "bia", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[actix_web::test]
async fn hsts_is_sent_over_tls_and_never_over_plain_http() {
    let app = spawn_tls_app().await;
    let client = https_client(&app.cert, H2_AND_H1);
    let (_, status, headers, _) = send(client.get(app.url("/healthz")), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers
            .get(header::STRICT_TRANSPORT_SECURITY)
            .and_then(|v| v.to_str().ok()),
        Some(tls::HSTS_VALUE)
    );
    let (_, _, headers, _) = send(client.get(app.url("/no/such/page")), None).await;
    assert!(
        headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
        "error responses carry HSTS too"
    );

    let plain = spawn_app().await;
    let res = plain.get("/healthz", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(!res.headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
}

#[actix_web::test]
async fn the_redirect_port_answers_308_to_the_https_url_with_the_same_path_and_query() {
    let app = spawn_tls_app().await;
    let redirect_port = app.redirect_port.expect("redirect listener bound");
    let client = awc::Client::builder().disable_redirects().finish();
    for (host, expected_host) in [
        (format!("localhost:{redirect_port}"), "localhost"),
        (format!("127.0.0.1:{redirect_port}"), "127.0.0.1"),
    ] {
        let res = client
            .get(format!(
                "http://127.0.0.1:{redirect_port}/api/users?theme=Jogos&online=true"
            ))
            .insert_header((header::HOST, host))
            .send()
            .await
            .expect("request sent");
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            res.headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some(
                format!(
                    "https://{expected_host}:{}/api/users?theme=Jogos&online=true",
                    app.port
                )
                .as_str()
            )
        );
        assert!(
            !res.headers()
                .contains_key(header::STRICT_TRANSPORT_SECURITY),
            "HSTS only over TLS"
        );
    }
    // And the redirect target really is the API, over TLS.
    let (_, status, _, _) = send(
        https_client(&app.cert, H2_AND_H1).get(app.url("/healthz")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn a_malformed_key_file_fails_start_up_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = write_test_cert(dir.path());
    let mut settings = test_settings(&dir);
    settings.tls_cert = Some(cert.clone());
    settings.tls_key = Some(key.clone());

    let cases: [(&[u8], &str); 3] = [
        (b"this is not a key\n", "no PRIVATE KEY"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a valid PEM private key",
        ),
        (
            b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "key file",
        ),
    ];
    for (contents, needle) in cases {
        std::fs::write(&key, contents).expect("key written");
        let message = match Application::build(settings.clone()).await {
            Ok(_) => panic!("a malformed key must stop start-up"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains(&key.display().to_string()),
            "names the file: {message}"
        );
        assert!(message.contains(needle), "says what is wrong: {message}");
    }

    std::fs::remove_file(&cert).expect("cert removed");
    let message = match Application::build(settings).await {
        Ok(_) => panic!("a missing certificate must stop start-up"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains(&cert.display().to_string()) && message.contains("certificate"),
        "{message}"
    );
}

#[actix_web::test]
async fn a_key_that_does_not_match_the_certificate_fails_start_up_naming_both_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, _) = write_test_cert(dir.path());
    let other = rcgen::KeyPair::generate().expect("key pair");
    let key = dir.path().join("other-key.pem");
    std::fs::write(&key, other.serialize_pem()).expect("key written");
    let mut settings = test_settings(&dir);
    settings.tls_cert = Some(cert.clone());
    settings.tls_key = Some(key.clone());
    let message = match Application::build(settings).await {
        Ok(_) => panic!("a mismatched key must stop start-up"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains(&key.display().to_string())
            && message.contains(&cert.display().to_string()),
        "{message}"
    );
}

#[actix_web::test]
async fn a_self_signed_certificate_is_generated_once_beside_the_database_and_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = sqlite_settings(&dir);
    settings.tls_self_signed = true;
    let cert_path = dir.path().join(tls::SELF_SIGNED_CERT_FILE);
    let key_path = dir.path().join(tls::SELF_SIGNED_KEY_FILE);

    let first = tls::server_config(&settings)
        .expect("generated")
        .expect("TLS on");
    assert_eq!(first.cert_path, cert_path);
    let cert_pem = std::fs::read(&cert_path).expect("cert beside the database");
    let key_pem = std::fs::read(&key_path).expect("key beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
    }
    let der = read_cert(&cert_path);
    assert_eq!(first.fingerprint, tls::fingerprint(&der));

    // The second start reuses the same files: same fingerprint, nothing rewritten.
    let second = tls::server_config(&settings)
        .expect("reused")
        .expect("TLS on");
    assert_eq!(second.fingerprint, first.fingerprint);
    assert_eq!(std::fs::read(&cert_path).expect("cert"), cert_pem);
    assert_eq!(std::fs::read(&key_path).expect("key"), key_pem);

    // And a client that trusts that certificate reaches the server by "localhost" over h2.
    let app = start(settings, der, dir).await;
    let (version, status, _, _) = send(
        https_client(&app.cert, H2_AND_H1).get(app.url("/healthz")),
        None,
    )
    .await;
    assert_eq!((version, status), (Version::HTTP_2, StatusCode::OK));
}

#[actix_web::test]
async fn a_self_signed_certificate_without_its_key_stops_start_up_instead_of_being_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = sqlite_settings(&dir);
    settings.tls_self_signed = true;
    let cert_path = dir.path().join(tls::SELF_SIGNED_CERT_FILE);
    std::fs::write(&cert_path, "kept").expect("written");
    let message = match Application::build(settings).await {
        Ok(_) => panic!("half a pair must stop start-up"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains(tls::SELF_SIGNED_KEY_FILE) && message.contains("delete"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&cert_path).expect("cert"), "kept");
}

#[actix_web::test]
async fn a_sighup_makes_the_server_serve_a_renewed_certificate_without_a_restart() {
    let app = spawn_tls_app().await;
    let old = app.cert.clone();
    // Renew: new files in place of the old ones (as certbot does), then SIGHUP.
    let (cert, _) = write_test_cert(app.dir.path());
    let new = read_cert(&cert);
    assert_ne!(tls::fingerprint(&new), tls::fingerprint(&old));
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
        .expect("SIGHUP sent to ourselves");

    let renewed = https_client(&new, H1_ONLY);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = renewed.get(app.url("/healthz")).send().await {
            assert_eq!(res.status(), StatusCode::OK);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is never served"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        https_client(&old, H1_ONLY)
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
}

#[actix_web::test]
async fn a_reload_with_a_broken_key_is_refused_naming_the_file_and_a_fixed_one_is_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = write_test_cert(dir.path());
    let setup = tls::load(&cert, &key).expect("loads");
    std::fs::write(&key, "garbage").expect("written");
    let message = setup
        .resolver
        .reload()
        .expect_err("a broken key is refused")
        .to_string();
    assert!(message.contains(&key.display().to_string()), "{message}");

    write_test_cert(dir.path());
    let fingerprint = setup.resolver.reload().expect("the fixed pair loads");
    assert_eq!(fingerprint, tls::fingerprint(&read_cert(&cert)));
    assert_ne!(fingerprint, setup.fingerprint);
}

#[actix_web::test]
async fn a_wss_connection_completes_the_protocol_welcome_and_accepts_its_https_origin() {
    use futures_util::SinkExt;

    let app = spawn_tls_app().await;
    // WebSocket upgrades are HTTP/1.1: offer only that, as browsers do for wss.
    let client = https_client(&app.cert, H1_ONLY);
    send(
        client.post(app.url("/api/register")),
        Some(json!({"nickname": "caio", "password": PASSWORD})),
    )
    .await;
    let (_, _, _, login) = send(
        client.post(app.url("/api/login")),
        Some(json!({"nickname": "caio", "password": PASSWORD})),
    )
    .await;
    let token = login["token"].as_str().expect("token").to_owned();

    let wss = format!("wss://localhost:{}/ws", app.port);
    let own_origin = format!("https://localhost:{}", app.port);
    let (res, mut socket) = client
        .ws(&wss)
        .bearer_auth(&token)
        .origin(own_origin.as_str())
        .connect()
        .await
        .expect("the wss upgrade succeeds from the server's own https origin");
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);

    let welcome = next_text(&mut socket).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["user"]["nickname"], "caio");
    let snapshot = next_text(&mut socket).await;
    assert_eq!(snapshot["type"], "presence.snapshot", "{snapshot}");
    socket
        .send(awc::ws::Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .expect("sent");
    while next_text(&mut socket).await["type"] != "pong" {}

    // The plain-http spelling of the same host is another origin.
    let refused = client
        .ws(&wss)
        .bearer_auth(&token)
        .origin(format!("http://localhost:{}", app.port).as_str())
        .connect()
        .await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status, StatusCode::FORBIDDEN)
        }
        Err(other) => panic!("expected 403, got {other}"),
        Ok(_) => panic!("an http origin must not open a wss socket"),
    }
}

/// The next text frame of a WebSocket, as JSON (control frames skipped).
async fn next_text(
    socket: &mut (impl futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
              + Unpin),
) -> Value {
    use futures_util::StreamExt;
    loop {
        let frame = actix_web::rt::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("valid frame");
        if let awc::ws::Frame::Text(bytes) = frame {
            return serde_json::from_slice(&bytes).expect("JSON frame");
        }
    }
}

#[actix_web::test]
async fn the_http_transport_runs_over_http2_with_tls_its_posts_answered_on_the_stream() {
    use futures_util::StreamExt;
    let app = spawn_tls_app().await;
    let client = https_client(&app.cert, H2_AND_H1);
    let (_, status, _, _) = send(
        client.post(app.url("/api/register")),
        Some(json!({"nickname": "ana", "password": PASSWORD, "themes": ["Jogos"], "capabilities": ["text"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, _, login) = send(
        client.post(app.url("/api/login")),
        Some(json!({"nickname": "ana", "password": PASSWORD})),
    )
    .await;
    let token = login["token"].as_str().expect("token").to_owned();
    let mut stream = client
        .get(app.url("/api/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream opened");
    assert_eq!(stream.version(), Version::HTTP_2, "ALPN must pick h2");
    assert_eq!(
        stream.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    // Reads events until one whose data contains `needle`; returns that data.
    let mut buf = String::new();
    let mut until = async |needle: &str| -> String {
        loop {
            if let Some(at) = buf.find("\n\n") {
                let event: String = buf.drain(..at + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    if data.contains(needle) {
                        return data.to_owned();
                    }
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), stream.next())
                .await
                .expect("an event in time")
                .expect("the stream goes on")
                .expect("a chunk");
            buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    };
    let first: Value = serde_json::from_str(&until("stream_id").await).unwrap();
    let post = app.url(first["post"].as_str().expect("post path"));
    until("\"welcome\"").await;
    // A post over the same HTTP/2 connection is answered on the stream.
    let res = client
        .post(&post)
        .bearer_auth(&token)
        .send_body(r#"[{"type":"ping","id":"h2"}]"#)
        .await
        .expect("post sent");
    assert_eq!(
        (res.version(), res.status()),
        (Version::HTTP_2, StatusCode::NO_CONTENT)
    );
    let pong: Value = serde_json::from_str(&until("\"pong\"").await).unwrap();
    assert_eq!(pong["id"], "h2");
}
