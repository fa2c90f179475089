//! TLS to PostgreSQL: each `sslmode`, `sslrootcert`, the `Tls` builder, and what the server
//! says of the store's connections (`pg_stat_ssl`).
//!
//! Runs against the local server on 127.0.0.1:5432 (user `postgres`, database `test`) once
//! `scripts/pg-tls-setup.sh` has given it a certificate for `localhost` and 127.0.0.1 signed
//! by a test CA, written to `/tmp/cqrs-pg-tls/ca.crt` (or `$CQRS_PG_TLS_DIR/ca.crt`). If the
//! server does not accept TLS or the CA file is missing, the tests run that script
//! themselves (it needs the rights to change the cluster's configuration: root in CI). If
//! the server or TLS is still missing, they fail when `CI=true` and are skipped with a
//! printed reason otherwise.
#![cfg(feature = "postgres")]
#![allow(missing_docs, reason = "test fixtures")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use cqrs_runtime::Metadata;
use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore, SslMode, Tls, TlsError};
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::NoTls;

const ADDR: &str = "127.0.0.1:5432";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI, else prints why the test is skipped.
fn skip(reason: &str) {
    if ci() {
        panic!("PostgreSQL TLS test cannot run and CI=true: {reason}");
    }
    eprintln!("skipping: {reason}");
}

fn ca_path() -> PathBuf {
    let dir = std::env::var("CQRS_PG_TLS_DIR").unwrap_or_else(|_| "/tmp/cqrs-pg-tls".to_owned());
    Path::new(&dir).join("ca.crt")
}

/// Whether the server answers `S` to an `SSLRequest`; an error if it cannot be reached.
fn server_accepts_tls() -> Result<bool, String> {
    let addr = ADDR.parse().map_err(|e| format!("{e}"))?;
    let mut socket = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {ADDR}: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    // Length 8, code 80877103.
    socket
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .map_err(|e| e.to_string())?;
    let mut answer = [0];
    socket
        .read_exact(&mut answer)
        .map_err(|e| format!("no answer to the SSL request: {e}"))?;
    Ok(answer[0] == b'S')
}

/// The CA that signed the server's certificate, after running the setup script if needed;
/// `Err` says why TLS cannot be tested. Checked once per test binary.
fn tls_ready() -> &'static Result<PathBuf, String> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY.get_or_init(|| {
        let ca = ca_path();
        if server_accepts_tls()? && ca.is_file() {
            return Ok(ca);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-tls-setup.sh");
        eprintln!(
            "TLS is off or {} is missing: running {}",
            ca.display(),
            script.display()
        );
        let run = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !run.status.success() {
            return Err(format!(
                "{} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        if !server_accepts_tls()? {
            return Err(format!("the server at {ADDR} still refuses TLS"));
        }
        if !ca.is_file() {
            return Err(format!(
                "{} is missing after the setup script",
                ca.display()
            ));
        }
        Ok(ca)
    })
}

/// The CA, or `None` (after failing under CI or printing why) when TLS cannot be tested.
fn ca() -> Option<PathBuf> {
    match tls_ready() {
        Ok(ca) => Some(ca.clone()),
        Err(reason) => {
            skip(reason);
            None
        }
    }
}

async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
        .await
        .expect("the server answered the SSL request, so it takes connections");
    tokio::spawn(connection);
    client
}

/// A unique name for a test's schema and `application_name`.
fn unique(test: &str) -> String {
    format!("cqrs_tls_{test}_{}", uuid::Uuid::now_v7().simple())
}

/// `url` with a fresh schema's name as `application_name`, so the server's view of the
/// store's connections can be found.
fn config(url: &str, name: &str) -> PostgresConfig {
    let separator = if url.contains('?') { '&' } else { '?' };
    PostgresConfig::new(&format!("{url}{separator}application_name={name}"))
        .expect("the URL parses")
        .schema(name)
        .expect("valid schema")
        .connections(2)
}

/// Appends two events and reads them back.
async fn append_and_load(store: &PostgresEventStore) {
    let events = (0..2)
        .map(|n| {
            NewEvent::new(
                "pinged",
                1,
                format!(r#"{{"n":{n}}}"#).into_bytes(),
                Metadata::new(),
            )
        })
        .collect();
    store
        .append("ping", "p-1", ExpectedVersion::NoStream, events)
        .await
        .expect("append");
    let read = store.read_stream("ping", "p-1", 0).await.expect("load");
    assert_eq!(read.len(), 2);
    let payload: serde_json::Value = serde_json::from_slice(&read[1].payload).expect("JSON");
    assert_eq!(payload, serde_json::json!({ "n": 1 }));
}

/// Whether the server encrypts each of the connections named `name` (at least one).
async fn encrypted(admin: &tokio_postgres::Client, name: &str) -> Vec<bool> {
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .expect("pg_stat_ssl");
    let ssl: Vec<bool> = rows.iter().map(|r| r.get(0)).collect();
    assert!(!ssl.is_empty(), "no connection named {name} on the server");
    ssl
}

async fn drop_schema(admin: &tokio_postgres::Client, schema: &str) {
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

/// Opens the store, appends and loads, checks the server's view, and drops the schema.
async fn round_trip(url: &str, test: &str, expect_ssl: bool) {
    let admin = admin().await;
    let name = unique(test);
    let store = config(url, &name).open().await.expect("open");
    append_and_load(&store).await;
    let ssl = encrypted(&admin, &name).await;
    drop_schema(&admin, &name).await;
    assert!(
        ssl.iter().all(|&s| s == expect_ssl),
        "{test}: connections' ssl {ssl:?}, expected {expect_ssl}"
    );
}

/// The error the store's open gave, which must be a typed TLS error.
fn tls_error(error: &StoreError) -> &TlsError {
    let source = match error {
        StoreError::Backend(source) | StoreError::Unavailable(source) => source,
        other => panic!("not a backend error: {other}"),
    };
    source
        .downcast_ref::<TlsError>()
        .unwrap_or_else(|| panic!("not a TLS error: {error}"))
}

async fn open_error(config: PostgresConfig) -> StoreError {
    config
        .open()
        .await
        .map(|_| ())
        .expect_err("the connection must be refused")
}

fn verify_full_url(ca: &Path) -> String {
    format!(
        "postgres://postgres@localhost:5432/test?sslmode=verify-full&sslrootcert={}",
        ca.display()
    )
}

#[tokio::test]
async fn verify_full_with_the_ca_appends_and_loads_over_tls() {
    let Some(ca) = ca() else { return };
    round_trip(&verify_full_url(&ca), "full", true).await;
    // The certificate names 127.0.0.1 too.
    let by_ip = format!(
        "postgres://postgres@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    round_trip(&by_ip, "full_ip", true).await;
}

/// `hostaddr` connects to the local server while TLS checks the name in `host`, which the
/// certificate does not list.
fn wrong_host_url(mode: &str, ca: &Path) -> String {
    format!(
        "host=wrong-name.invalid hostaddr=127.0.0.1 port=5432 user=postgres dbname=test \
         sslmode={mode} sslrootcert={}",
        ca.display()
    )
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_list() {
    let Some(ca) = ca() else { return };
    let error = open_error(
        PostgresConfig::new(&wrong_host_url("verify-full", &ca))
            .expect("parses")
            .schema(&unique("mismatch"))
            .expect("valid"),
    )
    .await;
    assert!(!error.is_transient(), "{error}");
    match tls_error(&error) {
        TlsError::HostMismatch { host, names } => {
            assert_eq!(host, "wrong-name.invalid");
            assert_eq!(names, &["localhost", "127.0.0.1"]);
        }
        other => panic!("expected a host name mismatch, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains(
            "not valid for the host `wrong-name.invalid` (it names localhost, 127.0.0.1)"
        ) && text.contains("sslmode=verify-ca"),
        "{text}"
    );
}

#[tokio::test]
async fn verify_ca_accepts_a_host_name_the_certificate_does_not_list() {
    let Some(ca) = ca() else { return };
    let url = wrong_host_url("verify-ca", &ca);
    let admin = admin().await;
    let name = unique("ca");
    let store = PostgresConfig::new(&format!("{url} application_name={name}"))
        .expect("parses")
        .schema(&name)
        .expect("valid")
        .open()
        .await
        .expect("verify-ca does not check the host name");
    append_and_load(&store).await;
    let ssl = encrypted(&admin, &name).await;
    drop_schema(&admin, &name).await;
    assert!(ssl.iter().all(|&s| s), "{ssl:?}");
}

#[tokio::test]
async fn verify_full_without_the_ca_refuses_the_untrusted_certificate() {
    if ca().is_none() {
        return;
    }
    // The platform's roots do not hold the test CA.
    let error = open_error(
        PostgresConfig::new("postgres://postgres@localhost:5432/test?sslmode=verify-full")
            .expect("parses"),
    )
    .await;
    match tls_error(&error) {
        TlsError::Untrusted { host, .. } => assert_eq!(host, "localhost"),
        // A machine without any trusted roots says so instead.
        TlsError::NoSystemRoots { .. } => {}
        other => panic!("expected an untrusted certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn require_encrypts_without_a_ca() {
    if ca().is_none() {
        return;
    }
    round_trip(
        "postgres://postgres@localhost:5432/test?sslmode=require",
        "require",
        true,
    )
    .await;
}

#[tokio::test]
async fn require_with_a_root_certificate_checks_the_chain() {
    let Some(ca) = ca() else { return };
    // Any other CA: a self-signed one made here.
    let other = std::env::temp_dir().join(format!("{}.pem", unique("other_ca")));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=another CA", "-keyout", "/dev/null", "-out"])
        .arg(&other)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    let url = |root: &Path| {
        format!(
            "postgres://postgres@localhost:5432/test?sslmode=require&sslrootcert={}",
            root.display()
        )
    };
    let error = open_error(PostgresConfig::new(&url(&other)).expect("parses")).await;
    let _ = std::fs::remove_file(&other);
    assert!(
        matches!(tls_error(&error), TlsError::Untrusted { .. }),
        "{error}"
    );
    round_trip(&url(&ca), "require_ca", true).await;
}

#[tokio::test]
async fn disable_connects_in_plain_text() {
    if ca().is_none() {
        return;
    }
    round_trip(
        "postgres://postgres@localhost:5432/test?sslmode=disable",
        "disable",
        false,
    )
    .await;
}

#[tokio::test]
async fn prefer_is_the_default_and_encrypts_when_the_server_accepts_tls() {
    if ca().is_none() {
        return;
    }
    let config = PostgresConfig::new("postgres://postgres@localhost:5432/test").expect("parses");
    assert!(format!("{config:?}").contains("Prefer"), "{config:?}");
    round_trip("postgres://postgres@localhost:5432/test", "prefer", true).await;
}

/// A proxy to the local server that answers `N` to the SSL request: a server without TLS.
async fn plain_only_proxy() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 8];
                client.read_exact(&mut first).await?;
                let mut server = tokio::net::TcpStream::connect(ADDR).await?;
                if first == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                    client.write_all(b"N").await?;
                } else {
                    server.write_all(&first).await?;
                }
                tokio::io::copy_bidirectional(&mut client, &mut server).await?;
                Ok::<_, std::io::Error>(())
            });
        }
    });
    addr
}

#[tokio::test]
async fn prefer_falls_back_to_plain_text_when_the_server_refuses_tls_and_require_fails() {
    if ca().is_none() {
        return;
    }
    let proxy = plain_only_proxy().await;
    let url = format!("postgres://postgres@localhost:{}/test", proxy.port());
    round_trip(&url, "prefer_plain", false).await;

    let error = open_error(
        PostgresConfig::new(&format!("{url}?sslmode=require"))
            .expect("parses")
            .schema(&unique("refused"))
            .expect("valid"),
    )
    .await;
    match tls_error(&error) {
        TlsError::Refused { mode } => assert_eq!(*mode, SslMode::Require),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(error.to_string().contains("does not accept TLS"), "{error}");
}

#[tokio::test]
async fn the_builder_sets_tls_in_code_for_every_connection() {
    let Some(ca) = ca() else { return };
    let admin = admin().await;
    let name = unique("builder");
    // The URL says plain text; the builder wins.
    let store = PostgresConfig::new(&format!(
        "postgres://postgres@localhost:5432/test?sslmode=disable&application_name={name}"
    ))
    .expect("parses")
    .schema(&name)
    .expect("valid")
    .connections(3)
    .tls(Tls::verify_full().root_cert(&ca))
    .open()
    .await
    .expect("open");
    // Several shared connections and a lease's dedicated one.
    let (a, b, c) = tokio::join!(
        append_and_load(&store),
        store.read_stream("ping", "p-2", 0),
        store.read_stream("ping", "p-3", 0),
    );
    let ((), b, c) = (a, b.expect("read"), c.expect("read"));
    assert!(b.is_empty() && c.is_empty());
    let lease = cqrs_runtime::store::LeaseStore::try_acquire(&store, "tls-lease")
        .await
        .expect("lease");
    assert!(lease.is_some());
    let ssl = encrypted(&admin, &name).await;
    drop(lease);
    drop_schema(&admin, &name).await;
    assert!(ssl.len() >= 2 && ssl.iter().all(|&s| s), "{ssl:?}");

    // The same CA as PEM text.
    let pem = std::fs::read(&ca).expect("CA file");
    let store = PostgresConfig::new("postgres://postgres@localhost:5432/test")
        .expect("parses")
        .schema(&unique("pem"))
        .expect("valid")
        .tls(Tls::verify_full().root_cert_pem(pem))
        .open()
        .await
        .expect("open with the CA as PEM text");
    drop_schema(&admin, store.schema()).await;
}

#[tokio::test]
async fn a_missing_root_certificate_file_is_named() {
    let error = open_error(
        PostgresConfig::new("postgres://postgres@localhost:5432/test")
            .expect("parses")
            .tls(Tls::verify_full().root_cert("/nonexistent/ca.pem")),
    )
    .await;
    match tls_error(&error) {
        TlsError::RootCert { path, .. } => assert_eq!(path, Path::new("/nonexistent/ca.pem")),
        other => panic!("expected the file's error, got {other:?}"),
    }
    let error = PostgresConfig::new("postgres://localhost/test?sslmode=verify").expect_err("bad");
    assert!(
        error.to_string().contains("`verify` is not one of"),
        "{error}"
    );
}

/// A password login (SCRAM) over TLS with `channel_binding=require`: the server checks the
/// hash of its certificate that the client computed (`tls-server-end-point`).
#[tokio::test]
async fn scram_with_channel_binding_over_verify_full() {
    let Some(ca) = ca() else { return };
    let admin = admin().await;
    let role = admin
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = 'cqrs_tls_scram'",
            &[],
        )
        .await
        .expect("pg_roles");
    if role.is_none() {
        skip("the role cqrs_tls_scram is missing: run scripts/pg-tls-setup.sh");
        return;
    }
    admin
        .batch_execute("GRANT CREATE ON DATABASE test TO cqrs_tls_scram")
        .await
        .expect("grant");
    let name = unique("scram");
    let url = format!(
        "postgres://cqrs_tls_scram:cqrs-tls-scram@localhost:5432/test\
         ?sslmode=verify-full&sslrootcert={}&channel_binding=require",
        ca.display()
    );
    let store = config(&url, &name)
        .open()
        .await
        .expect("SCRAM-SHA-256-PLUS login");
    append_and_load(&store).await;
    let ssl = encrypted(&admin, &name).await;
    drop_schema(&admin, &name).await;
    assert!(ssl.iter().all(|&s| s), "{ssl:?}");
}
