//! Tuning knobs of a store, with the defaults lockd documents.

use std::time::Duration;

/// How the writer thread talks to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring where the kernel allows it and the directory is not on a
    /// network filesystem; the `pwritev` path otherwise.
    #[default]
    Auto,
    /// io_uring or fail to open: for tests and for operators who want to be
    /// sure which path they run.
    Uring,
    /// `pwritev` + `fdatasync` on the writer thread.
    Sync,
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "uring" => Ok(IoMode::Uring),
            "sync" => Ok(IoMode::Sync),
            other => Err(format!("unknown io mode {other:?} (expected auto, uring or sync)")),
        }
    }
}

/// Root key material for at-rest encryption of values.
#[derive(Clone)]
pub struct EncryptionOptions {
    /// 32 bytes of secret from which every per-object key is derived.
    pub root_key: [u8; 32],
    /// Snappy-compress values before encrypting them.
    pub snappy: bool,
}

impl std::fmt::Debug for EncryptionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionOptions")
            .field("root_key", &"<redacted>")
            .field("snappy", &self.snappy)
            .finish()
    }
}

/// Options for [`crate::LogStore::open`].
///
/// The defaults match lockd's disk backend: 4096 operations per commit
/// batch, 64 MiB segments, compaction every 30 minutes once at least two
/// sealed segments would give back 64 MiB, obsolete files kept 15 minutes,
/// compaction I/O throttled to 8 MiB/s.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which write path to use.
    pub io: IoMode,
    /// Most operations (puts + deletes) one group commit carries.
    pub commit_max_ops: usize,
    /// Most encoded bytes one group commit carries (one batch may exceed it
    /// alone; it is then written by itself).
    pub commit_max_bytes: usize,
    /// Size at which the active segment is sealed and a new one started;
    /// also the preallocation size of each segment.
    pub segment_size: u64,
    /// Largest value [`crate::Batch::put`] accepts inline; larger values go
    /// through [`crate::LogStore::write_blob`].
    pub max_inline_value: usize,
    /// Whether the background compactor runs on its own timer.
    pub compaction: bool,
    /// How often the background compactor looks for work.
    pub compaction_interval: Duration,
    /// Fewest sealed segments a compaction run takes as input.
    pub compaction_min_segments: usize,
    /// Least garbage (bytes) a compaction run must give back.
    pub compaction_min_reclaim: u64,
    /// Compaction read+write budget in bytes per second (0 = unthrottled).
    pub compaction_throttle: u64,
    /// How long obsolete segment and blob files stay on disk after they
    /// stop being referenced.
    pub delete_grace: Duration,
    /// Write a checkpoint of the index once this many bytes were appended
    /// since the last one (0 = only on clean close and after compaction).
    pub snapshot_every_bytes: u64,
    /// At-rest encryption of values; `None` stores them as given.
    pub encryption: Option<EncryptionOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            io: IoMode::Auto,
            commit_max_ops: 4096,
            commit_max_bytes: 16 << 20,
            segment_size: 64 << 20,
            max_inline_value: 16 << 20,
            compaction: true,
            compaction_interval: Duration::from_secs(30 * 60),
            compaction_min_segments: 2,
            compaction_min_reclaim: 64 << 20,
            compaction_throttle: 8 << 20,
            delete_grace: Duration::from_secs(15 * 60),
            snapshot_every_bytes: 256 << 20,
            encryption: None,
        }
    }
}

impl Options {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::Invalid(m.to_string()));
        if self.commit_max_ops == 0 {
            return bad("commit_max_ops must be at least 1");
        }
        if self.segment_size < 4096 {
            return bad("segment_size must be at least 4096 bytes");
        }
        if self.segment_size > u32::MAX as u64 {
            return bad("segment_size must be below 4 GiB");
        }
        if self.max_inline_value as u64 >= u32::MAX as u64 {
            return bad("max_inline_value must be below 4 GiB");
        }
        Ok(())
    }
}
