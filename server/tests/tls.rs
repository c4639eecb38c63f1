//! The listener over TLS: a real socket, a self-signed certificate written as PEM files, a
//! rustls client that trusts it. Plain HTTP on the TLS port is no answer; bad files are named.

use hoist_control::{Backend, Config, Hoist};
use hoist_server::{Stop, Tls};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn hoist(dir: &std::path::Path) -> Hoist {
    Hoist::open(Config {
        backend: Backend::Embedded {
            dir: Some(dir.join("store")),
        },
        cache: None,
        secret_key_file: Some(dir.join("secret.key")),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_over_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let tls = Tls::from_pem_files(&cert, &key).expect("the PEM files make a TLS setup");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopping) = Stop::new();
    let router = hoist_server::router(hoist(dir.path()), stopping.clone());
    let server = tokio::spawn(hoist_server::serve(listener, router, Some(tls), stopping));

    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("a TLS handshake");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\n  \"ok\": true\n}\n"), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(address).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut bytes)).await;
    assert!(!bytes.starts_with(b"HTTP/1.1 200"), "{bytes:?}");

    stop.stop();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[test]
fn bad_pem_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let missing = Tls::from_pem_files(&cert, &key).err().expect("no files");
    assert!(missing.to_string().starts_with("--tls-cert"), "{missing}");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let bad_key = Tls::from_pem_files(&cert, &key).err().expect("no key");
    let message = bad_key.to_string();
    assert!(
        message.starts_with("--tls-key") && message.contains("key.pem"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}
