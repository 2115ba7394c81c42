//! keyledger's pure read models, built by folding committed events.
//!
//! ```text
//!   stream (seq, Commit) ──► Projection::apply ──► ValidationTable   hash -> grant, for API nodes
//!                                            └──► Catalogue         id -> name, prefix, flags, for admins
//! ```
//!
//! A projection never skips what it cannot trust: [`Projection::poison`] makes
//! the affected key (or, when no key can be named, every key) fail closed.

mod access;
mod audit;
mod catalogue;
mod projection;
#[cfg(test)]
mod test_commits;
mod validation;

pub use access::{Access, Denial, Grant};
pub use audit::{Audit, Cut, Finding, HistoryEntry, KeyAt, Record, Summary, Validity, validity};
pub use catalogue::{Catalogue, KeyView, Page, PoisonedKey, Status as CatalogueStatus};
pub use projection::Projection;
pub use validation::{ValidationStatus, ValidationTable};
