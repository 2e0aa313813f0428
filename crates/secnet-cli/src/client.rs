//! The local API client: one connection, one request frame, one response frame.

use std::path::Path;
use std::time::Duration;

use secnet_api::wire::{self, WireError};
use secnet_api::{LocalRequest, LocalResponse, LocalResult};
use tokio::net::UnixStream;

use crate::error::CliError;

/// The single-threaded runtime the CLI's requests run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Local {
            what: "start the I/O runtime",
            source,
        })
}

/// Sends `request` to the daemon listening on `socket` and waits at most `timeout` (connect
/// included) for its answer.
pub async fn call(
    socket: &Path,
    request: &LocalRequest,
    timeout: Duration,
) -> Result<LocalResponse, CliError> {
    match tokio::time::timeout(timeout, exchange(socket, request)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(CliError::Timeout {
            socket: socket.to_path_buf(),
            after: timeout,
        }),
    }
}

async fn exchange(socket: &Path, request: &LocalRequest) -> Result<LocalResponse, CliError> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => CliError::PermissionDenied {
                socket: socket.to_path_buf(),
                source,
            },
            _ => CliError::Connect {
                socket: socket.to_path_buf(),
                source,
            },
        })?;
    wire::write_msg(&mut stream, request)
        .await
        .map_err(|e| wire_error(socket, e))?;
    let answer: Option<LocalResult> = wire::read_msg(&mut stream)
        .await
        .map_err(|e| wire_error(socket, e))?;
    match answer {
        // A well-formed answer of the wrong kind is refused here, before it is rendered.
        Some(result) => {
            secnet_api::checked_answer(request.answered_with(), result).map_err(CliError::Api)
        }
        None => Err(CliError::ConnectionLost {
            socket: socket.to_path_buf(),
            detail: "the daemon closed the connection without answering".into(),
        }),
    }
}

fn wire_error(socket: &Path, e: WireError) -> CliError {
    let socket = socket.to_path_buf();
    match e {
        WireError::Io(_) | WireError::Truncated => CliError::ConnectionLost {
            socket,
            detail: e.to_string(),
        },
        WireError::TooLarge(_) | WireError::Malformed(_) => CliError::Protocol {
            socket,
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;
    use secnet_api::{ApiError, ErrorKind};
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixListener;

    /// A socket in a fresh temporary directory, and a listener on it that plays the daemon.
    /// The directory must outlive the socket's use.
    fn fake_daemon_socket() -> (tempfile::TempDir, PathBuf, UnixListener) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let listener = UnixListener::bind(&path).unwrap();
        (dir, path, listener)
    }

    /// Accepts the next connection and reads its request, as the daemon does before it answers.
    async fn accept_request(listener: &UnixListener) -> (UnixStream, Option<LocalRequest>) {
        let (mut s, _) = listener.accept().await.unwrap();
        let request = wire::read_msg(&mut s).await.unwrap();
        (s, request)
    }

    /// The error of a call that must fail.
    async fn failed_call(socket: &Path, request: &LocalRequest, timeout: Duration) -> CliError {
        call(socket, request, timeout).await.unwrap_err()
    }

    #[tokio::test]
    async fn request_and_answer_round_trip() {
        let (_dir, path, listener) = fake_daemon_socket();
        let server = tokio::spawn(async move {
            let (mut s, req) = accept_request(&listener).await;
            assert!(matches!(req.unwrap(), LocalRequest::Leave { force: true }));
            let answer: LocalResult = Ok(LocalResponse::Left);
            wire::write_msg(&mut s, &answer).await.unwrap();
        });
        let resp = call(
            &path,
            &LocalRequest::Leave { force: true },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(matches!(resp, LocalResponse::Left));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_answer_of_the_wrong_kind_is_an_internal_error() {
        let (_dir, path, listener) = fake_daemon_socket();
        tokio::spawn(async move {
            let (mut s, _) = accept_request(&listener).await;
            let answer: LocalResult = Ok(LocalResponse::Left);
            wire::write_msg(&mut s, &answer).await.unwrap();
        });
        let err = failed_call(&path, &LocalRequest::NodeLs, Duration::from_secs(5)).await;
        assert!(
            matches!(&err, CliError::Api(e) if e.kind == ErrorKind::Internal && e.message.contains("Left")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn api_error_is_passed_through() {
        let (_dir, path, listener) = fake_daemon_socket();
        tokio::spawn(async move {
            let (mut s, _) = accept_request(&listener).await;
            let answer: LocalResult = Err(ApiError::new(ErrorKind::NotFound, "no such node"));
            wire::write_msg(&mut s, &answer).await.unwrap();
        });
        let err = failed_call(&path, &LocalRequest::NodeLs, Duration::from_secs(5)).await;
        assert!(matches!(&err, CliError::Api(e) if e.kind == ErrorKind::NotFound));
        assert_eq!(err.exit_code(), 1);
    }

    #[tokio::test]
    async fn silent_daemon_times_out() {
        let (_dir, path, listener) = fake_daemon_socket();
        let _server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let err = failed_call(&path, &LocalRequest::Status, Duration::from_millis(200)).await;
        assert!(matches!(err, CliError::Timeout { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 3);
    }

    #[tokio::test]
    async fn closed_or_garbled_answers() {
        let (_dir, path, listener) = fake_daemon_socket();
        tokio::spawn(async move {
            // First connection: closed without an answer.
            let (s, _) = accept_request(&listener).await;
            drop(s);
            // Second: a frame that is not a LocalResult.
            let (mut s, _) = accept_request(&listener).await;
            s.write_all(&[0, 0, 0, 2, b'4', b'2']).await.unwrap();
        });
        let err = failed_call(&path, &LocalRequest::Status, Duration::from_secs(5)).await;
        assert!(matches!(err, CliError::ConnectionLost { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 3);
        let err = failed_call(&path, &LocalRequest::Status, Duration::from_secs(5)).await;
        assert!(matches!(err, CliError::Protocol { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 4);
    }

    #[tokio::test]
    async fn missing_socket_cannot_connect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        let err = failed_call(&path, &LocalRequest::Status, Duration::from_secs(5)).await;
        assert!(matches!(err, CliError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot connect"));
        assert_eq!(err.exit_code(), 3);
    }
}
