//! A WebSocket client connection (issue 12: Slack's Socket Mode): `ws://` over TCP, `wss://` over
//! rustls with the platform's roots, the handshake bounded in time. Frames are the caller's.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use tokio_tungstenite::tungstenite::Message;

/// The stream under a connection: plain TCP or TLS over it.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// One open WebSocket.
pub type Socket = tokio_tungstenite::WebSocketStream<Box<dyn Transport>>;

/// The largest frame or message read: Slack's envelopes are a few KB.
const MAX_MESSAGE: usize = 1 << 20;

/// Opens `url` (`ws://` or `wss://`), connect and handshake within `timeout`. The error is one
/// line (never the URL's query, which for Slack holds a ticket).
pub async fn connect(url: &str, timeout: Duration) -> Result<Socket, String> {
    tokio::time::timeout(timeout, open(url))
        .await
        .map_err(|_| format!("no WebSocket within {timeout:?}"))?
}

async fn open(url: &str) -> Result<Socket, String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "not a WebSocket URL".to_string())?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err("a WebSocket URL starts with ws:// or wss://".into()),
    };
    let host = uri
        .host()
        .ok_or("a WebSocket URL names a host")?
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Transport> = if tls {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| format!("{host} is not a TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("WebSocket handshake with {host}: {e}"))?;
    Ok(socket)
}
