//! Reading an instance's output: what [`crate::Runtime::logs`] is asked and answers.
//!
//! The answer is a channel of chunks (raw bytes, in order) that the runtime fills from a task of
//! its own: it ends when the output does (at once without `follow`; when the instance's run ends
//! with it) and the runtime stops reading as soon as the receiver is dropped, so a client that
//! goes away costs nothing.

use tokio::sync::mpsc;

use crate::RuntimeError;

/// Which part of an instance's output to read (the pod log API's options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// Keep sending what the instance writes until its run ends (or the reader goes away).
    pub follow: bool,
    /// The run before the current one (the last terminated run) instead of the current one.
    pub previous: bool,
    /// Only the last this many lines of what was written so far.
    pub tail_lines: Option<u64>,
    /// Only what was written in the last this many seconds.
    pub since_seconds: Option<u64>,
}

/// Chunks of an instance's output, in order, until the channel closes. An `Err` is the last
/// item: the output could not be read any further.
pub type LogChunks = mpsc::Receiver<Result<Vec<u8>, RuntimeError>>;

/// How many chunks a runtime may read ahead of a slow reader.
pub const LOG_CHANNEL_DEPTH: usize = 16;

/// Why an instance's output cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The application has no instance of this name (now, or kept from a stopped one).
    #[error("{0}")]
    NoInstance(String),
    /// `previous` was asked of an instance that has not restarted.
    #[error("{0}")]
    NoPrevious(String),
    /// The runtime failed or cannot read logs at all.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// A channel for [`LogChunks`]: the runtime keeps the sender.
pub fn log_channel() -> (mpsc::Sender<Result<Vec<u8>, RuntimeError>>, LogChunks) {
    mpsc::channel(LOG_CHANNEL_DEPTH)
}
