//! HTTPS with a certificate and key from files, for clients that insist on `https://`.

mod common;

use std::sync::Arc;

use common::*;
use liveroom_server::TlsConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server with a fresh self-signed certificate for `localhost`, and a TLS connection to it
/// that trusts that certificate.
async fn tls_server() -> (
    TestServer,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let tls = TlsConfig::load(&cert_file, &key_file).unwrap();
    let server = TestServer::start(
        liveroom_store::MemoryStore::new(),
        liveroom_server::ServerConfig {
            tls: Some(tls),
            ..config()
        },
    )
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    (server, stream, dir)
}

#[tokio::test]
async fn the_realtime_gateway_speaks_over_tls_on_the_same_port() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (server, stream, _dir) = tls_server().await;
    let mut request = "wss://localhost/v1/realtime".into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "liveroom.v1.json".parse().unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "liveroom.v1.json"
    );
    let hello = serde_json::json!({"id": 1, "op": "hello", "d": {
        "v": 1, "sdkappid": APP, "userid": "alice", "usersig": server.sig("alice")}});
    socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["ok"]["user"], "alice", "{reply}");
}

#[tokio::test]
async fn serves_https_with_a_self_signed_certificate() {
    let (server, mut stream, _dir) = tls_server().await;

    let body = r#"{"RoomInfo":{"RoomId":"secure-room"}}"#;
    let path = server.url("create_room").replace(&server.base, "");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""ErrorCode":0"#), "{answer}");

    // Plain HTTP on the TLS port is refused, not answered in clear text.
    let plain = server
        .http
        .post(server.url("get_room_info"))
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[test]
fn bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let error = TlsConfig::load(&missing, &missing).unwrap_err();
    assert!(error.contains("missing.pem"), "{error}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let error = TlsConfig::load(&empty, &empty).unwrap_err();
    assert!(error.contains("empty.pem"), "{error}");
}
