//! What every read model offers the code that feeds it.

use keyledger_events::{Commit, KeyId};

/// A read model fed, in stream order, by the committed events.
///
/// Methods take `&self`: projections are shared between the task that feeds
/// them and the requests that read them.
pub trait Projection: Send + Sync {
    /// The stream sequence of the last commit applied (0 before any).
    fn position(&self) -> u64;

    /// Applies the commit stored at stream sequence `seq`. Returns `false`,
    /// changing nothing, when `seq` is at or below [`Projection::position`]
    /// (it was applied already). Sequences may have gaps.
    fn apply(&self, seq: u64, commit: &Commit) -> bool;

    /// Records that the message at `seq` could not be decoded or trusted.
    /// The named keys fail closed from now on; with no key named, every key
    /// does. Returns `false` when `seq` was already passed.
    fn poison(&self, seq: u64, keys: &[KeyId], reason: &str) -> bool;

    /// Makes every key fail closed, whatever the sequence: for trouble that is
    /// not one message, such as the stream going backwards.
    fn seal(&self, reason: &str);

    /// Passes over the message at `seq` without applying it, because an
    /// operator acknowledged it as untrusted. Returns `false` when `seq` was
    /// already passed.
    fn acknowledge(&self, seq: u64) -> bool;

    /// Called once the replay has reached the stream head seen at start.
    fn caught_up(&self) {}
}
