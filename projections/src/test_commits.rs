//! Building commits in unit tests.

use keyledger_events::{Actor, Change, Commit, Event, EventId, KeyId, Origin, RequestId};
use time::macros::datetime;

/// A commit of `changes` to `key`, with fixed ids, time and actor.
pub(crate) fn commit(key: KeyId, changes: Vec<Change>) -> Commit {
    Commit::new(
        changes
            .into_iter()
            .map(|change| Event {
                event_id: EventId::from_parts(1, [3; 10]),
                key_id: key,
                at: datetime!(2026-12-01 10:00 UTC),
                actor: Actor::Bootstrap,
                request_id: "r".parse::<RequestId>().expect("a valid request id"),
                origin: Origin::default(),
                change,
            })
            .collect(),
    )
    .expect("one key, at least one change")
}
