//! Reading an upload's body: chunk by chunk, with an idle timeout, and draining what is left of
//! a refused one so the client gets the answer.

use super::{DRAIN_BYTES, DRAIN_TIME, IDLE_TIMEOUT, UploadError};
use crate::discover::landing::{Partial, PartialError};
use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use tracing::error;

/// The request body, read chunk by chunk (memory stays bounded by one chunk and the file
/// buffer), remembering whether anything was asked of it yet.
pub(super) struct BodyReader {
    stream: axum::body::BodyDataStream,
    /// The client waits for `100 Continue` (sent at the first read) before sending the body.
    expects_continue: bool,
    polled: bool,
    /// The announced Content-Length, and the bytes read so far.
    declared: Option<u64>,
    received: u64,
    /// The stream ended, failed or went idle: nothing more to read.
    done: bool,
}

impl BodyReader {
    pub(super) fn new(body: Body, headers: &HeaderMap) -> BodyReader {
        let expects_continue =
            headers.get(header::EXPECT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        BodyReader { stream: body.into_data_stream(), expects_continue, polled: false, declared, received: 0, done: false }
    }

    pub(super) async fn next(&mut self, name: &str) -> Result<Option<axum::body::Bytes>, UploadError> {
        self.polled = true;
        let next = tokio::time::timeout(IDLE_TIMEOUT, self.stream.next()).await;
        let next = next.map_err(|_| {
            self.done = true;
            UploadError::Idle { name: name.to_string() }
        })?;
        match next {
            None => {
                self.done = true;
                Ok(None)
            }
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Some(Err(e)) => {
                self.done = true;
                Err(UploadError::CutOff { name: name.to_string(), received: 0, reason: e.to_string() })
            }
        }
    }

    /// Writes the whole body into `partial`.
    pub(super) async fn write_into(&mut self, partial: &mut Partial, name: &str, limit: u64) -> Result<(), UploadError> {
        loop {
            let chunk = match self.next(name).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(()),
                Err(UploadError::CutOff { name, reason, .. }) => {
                    return Err(UploadError::CutOff { name, received: partial.written(), reason });
                }
                Err(e) => return Err(e),
            };
            partial.write(&chunk).await.map_err(|e| match e {
                PartialError::TooLarge { .. } => UploadError::TooLarge { name: name.to_string(), limit },
                e => {
                    error!(file = %name.escape_debug(), error = %e, "cannot write an upload");
                    UploadError::Storage { name: name.to_string() }
                }
            })?;
        }
    }

    /// Reads and discards what is left of a refused body (within [`DRAIN_BYTES`] and
    /// [`DRAIN_TIME`]), so the answer reaches a client that is still sending. A client waiting
    /// for `100 Continue` has sent nothing: it gets the answer at once instead; so does one
    /// announcing more than could be drained (its connection is closed after the answer).
    pub(super) async fn drain(&mut self) {
        let too_much = self.declared.is_some_and(|d| d.saturating_sub(self.received) > DRAIN_BYTES);
        if self.done || too_much || (self.expects_continue && !self.polled) {
            return;
        }
        let mut left = DRAIN_BYTES;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(chunk)) = self.stream.next().await {
                left = left.saturating_sub(chunk.len() as u64);
                if left == 0 {
                    break;
                }
            }
        })
        .await;
        self.done = true;
    }
}

/// The Content-Length, if any; 411 when the body has no framing at all (neither a length nor
/// chunked encoding), since HTTP/1.1 then means an empty body.
pub(super) fn declared_length(name: &str, headers: &HeaderMap) -> Result<Option<u64>, UploadError> {
    match headers.get(header::CONTENT_LENGTH) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| UploadError::BadLength { name: name.to_string() }),
        None if headers.contains_key(header::TRANSFER_ENCODING) => Ok(None),
        None => Err(UploadError::LengthRequired { name: name.to_string() }),
    }
}
