//! Request bodies: a buffered one that can be replayed on another
//! endpoint, and a streamed one read from an `AsyncRead` chunk by chunk.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, ReadBuf};

use super::error::ReaderError;

/// Error type of request bodies, as hyper wants it.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// The one body type the pooled client is built for.
pub(crate) type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body that is already in memory (JSON requests, `update` with `Bytes`).
pub(crate) fn full(bytes: Bytes) -> ReqBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// A body streamed from `reader`; sent with chunked transfer encoding
/// because its length is unknown.
pub(crate) fn streamed<R: AsyncRead + Send + Unpin + 'static>(reader: R) -> ReqBody {
    ReaderBody {
        reader,
        scratch: vec![0; CHUNK].into_boxed_slice(),
        done: false,
    }
    .map_err(|e| -> BoxError { Box::new(e) })
    .boxed_unsync()
}

/// Size of the chunks read from a streamed body.
const CHUNK: usize = 64 * 1024;

struct ReaderBody<R> {
    reader: R,
    scratch: Box<[u8]>,
    done: bool,
}

impl<R: AsyncRead + Unpin> Body for ReaderBody<R> {
    type Data = Bytes;
    type Error = ReaderError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ReaderError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut buf = ReadBuf::new(&mut this.scratch);
        if let Err(e) = ready!(Pin::new(&mut this.reader).poll_read(cx, &mut buf)) {
            this.done = true;
            return Poll::Ready(Some(Err(ReaderError(e))));
        }
        let filled = buf.filled();
        if filled.is_empty() {
            this.done = true;
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(filled)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_body_yields_every_byte_in_chunks() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let body = streamed(std::io::Cursor::new(data.clone()));
        assert_eq!(body.size_hint().exact(), None, "unknown length means chunked encoding");
        let collected = body.collect().await.expect("test setup").to_bytes();
        assert_eq!(collected.as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn reader_errors_are_marked() {
        struct Failing;
        impl AsyncRead for Failing {
            fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
                Poll::Ready(Err(std::io::Error::other("disk on fire")))
            }
        }
        let err = streamed(Failing).collect().await.expect_err("the call must fail");
        assert!(err.downcast_ref::<ReaderError>().is_some(), "{err}");
    }

    #[tokio::test]
    async fn full_body_has_exact_length() {
        let body = full(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
    }
}
