//! Length-prefixed JSON frames: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! Every secnet socket (the local Unix socket and the mTLS control connections) speaks this
//! framing. JSON keeps the protocol debuggable and schema changes additive; the length prefix
//! bounds what a peer can make us buffer.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted: large enough for a Raft snapshot of a big cluster, small
/// enough that a hostile peer cannot make us allocate without bound.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix exceeds the limit.
    #[error("frame of {0} bytes exceeds the size limit")]
    TooLarge(usize),
    /// The frame is not valid JSON for the expected message.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

/// Encodes one message as a frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(WireError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the first frame of `buf`: `Ok(None)` when more bytes are needed, otherwise the
/// message and the number of bytes it used. Pure, so it is property-tested and fuzzed.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, WireError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((serde_json::from_slice(body)?, 4 + len)))
}

/// Writes one message and flushes.
pub async fn write_msg<W, T>(w: &mut W, msg: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one message; `Ok(None)` when the peer closed the connection between frames.
pub async fn read_msg<R, T>(r: &mut R) -> Result<Option<T>, WireError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    read_msg_max(r, MAX_FRAME).await
}

/// Like [`read_msg`] with a smaller size limit: a peer that has not authenticated yet gets no
/// more than it needs to say who it is.
pub async fn read_msg_max<R, T>(r: &mut R, max: usize) -> Result<Option<T>, WireError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let max = max.min(MAX_FRAME);
    let mut len_bytes = [0u8; 4];
    match r.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > max {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    match r.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(WireError::Truncated)
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_partial_frames() {
        let frame = encode(&vec!["a".to_string(), "b".to_string()]).unwrap();
        for cut in 0..frame.len() {
            assert!(decode::<Vec<String>>(&frame[..cut]).unwrap().is_none());
        }
        let (msg, used) = decode::<Vec<String>>(&frame).unwrap().unwrap();
        assert_eq!(msg, vec!["a", "b"]);
        assert_eq!(used, frame.len());
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let buf = u32::MAX.to_be_bytes();
        assert!(matches!(
            decode::<String>(&buf),
            Err(WireError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn smaller_limit_is_enforced() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        write_msg(&mut a, &"x".repeat(100)).await.unwrap();
        assert!(matches!(
            read_msg_max::<_, String>(&mut b, 50).await,
            Err(WireError::TooLarge(102))
        ));
    }

    #[tokio::test]
    async fn async_round_trip_and_truncation() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_msg(&mut a, &42u32).await.unwrap();
        assert_eq!(read_msg::<_, u32>(&mut b).await.unwrap(), Some(42));
        a.write_all(&[0, 0, 0, 10, b'1']).await.unwrap();
        drop(a);
        assert!(matches!(
            read_msg::<_, u32>(&mut b).await,
            Err(WireError::Truncated)
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<crate::LocalRequest>(&bytes);
            let _ = decode::<serde_json::Value>(&bytes);
        }

        #[test]
        fn any_string_round_trips(s in ".*") {
            let frame = encode(&s).unwrap();
            let (back, used) = decode::<String>(&frame).unwrap().unwrap();
            prop_assert_eq!(back, s);
            prop_assert_eq!(used, frame.len());
        }
    }
}
