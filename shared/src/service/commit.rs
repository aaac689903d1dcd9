//! Load -> decide -> commit: what a request read (`Snapshot`), what it decided (`Decision`),
//! and the loop that commits a decision and, when a condition no longer holds, decides again on
//! the records as they are now (the store returns them with the conflict, so no read is spent).

use std::collections::HashMap;

use crate::error::Error;
use crate::identifiers::Identifier;
use crate::ids::{AppId, Home, MethodId, RequestId};
use crate::model::{Codes, Owner, SendCounter, Session, TestIdentifier, User};
use crate::ports::{CommitError, CommitToken, HomeRecords, Key, Record, Versioned, Write};
use crate::service::Deps;

/// Decisions a request may take before it gives up as contended (503): each lost race costs one
/// commit, and only a concurrent winner makes one lose.
pub const MAX_DECISIONS: u32 = 50;

/// The records a request read, by key. A key that was read and found nothing maps to `None`;
/// a key that was not read is absent.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    records: HashMap<Key, Option<Record>>,
    /// Homes read whole (`load_home`): all their sessions are in `records`.
    homes: std::collections::HashSet<(AppId, Home)>,
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// The result of `LoginStore::load(keys)`.
    pub fn from_loaded(keys: &[Key], loaded: Vec<Option<Record>>) -> Self {
        let mut snapshot = Snapshot::new();
        snapshot.extend(keys, loaded);
        snapshot
    }

    /// Adds what another read found.
    pub fn merge(&mut self, other: Snapshot) {
        self.records.extend(other.records);
        self.homes.extend(other.homes);
    }

    /// What `load_home` found: the user, the codes and every session of the home.
    pub fn put_home(&mut self, app_id: &AppId, home: Home, records: HomeRecords) {
        self.set(
            Key::User {
                app_id: app_id.clone(),
                home,
            },
            records.user.map(Record::User),
        );
        for codes in records.codes {
            self.put(Record::Codes(codes));
        }
        for session in records.sessions {
            self.put(Record::Session(session));
        }
        self.homes.insert((app_id.clone(), home));
    }

    /// Every session of a home, if the home was read whole.
    pub fn sessions_of(&self, app_id: &AppId, home: Home) -> Option<Vec<&Versioned<Session>>> {
        if !self.homes.contains(&(app_id.clone(), home)) {
            return None;
        }
        Some(
            self.records
                .iter()
                .filter_map(|(key, record)| match (key, record) {
                    (
                        Key::Session {
                            app_id: a, home: h, ..
                        },
                        Some(Record::Session(s)),
                    ) if a == app_id && *h == home => Some(s),
                    _ => None,
                })
                .collect(),
        )
    }

    pub fn extend(&mut self, keys: &[Key], loaded: Vec<Option<Record>>) {
        for (key, record) in keys.iter().zip(loaded) {
            self.records.insert(key.clone(), record);
        }
    }

    /// Records what is at `key` now (read, or returned with a conflict).
    pub fn set(&mut self, key: Key, record: Option<Record>) {
        self.records.insert(key, record);
    }

    pub fn put(&mut self, record: Record) {
        self.records.insert(record.key(), Some(record));
    }

    /// `None`: not read; `Some(None)`: read, nothing there.
    pub fn get(&self, key: &Key) -> Option<Option<&Record>> {
        self.records.get(key).map(Option::as_ref)
    }

    pub fn user(&self, app_id: &AppId, home: Home) -> Option<Option<&Versioned<User>>> {
        self.get(&Key::User {
            app_id: app_id.clone(),
            home,
        })
        .map(|r| match r {
            Some(Record::User(user)) => Some(user),
            _ => None,
        })
    }

    pub fn codes(&self, app_id: &AppId, method_id: &MethodId) -> Option<Option<&Versioned<Codes>>> {
        self.get(&Key::Codes {
            app_id: app_id.clone(),
            method_id: method_id.clone(),
        })
        .map(|r| match r {
            Some(Record::Codes(codes)) => Some(codes),
            _ => None,
        })
    }

    pub fn session(&self, key: &Key) -> Option<Option<&Versioned<Session>>> {
        self.get(key).map(|r| match r {
            Some(Record::Session(session)) => Some(session),
            _ => None,
        })
    }

    pub fn owner(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Option<Option<&Versioned<Owner>>> {
        self.get(&Key::Owner {
            app_id: app_id.clone(),
            identifier: identifier.clone(),
        })
        .map(|r| match r {
            Some(Record::Owner(owner)) => Some(owner),
            _ => None,
        })
    }

    pub fn test_identifier(
        &self,
        app_id: &AppId,
        identifier: &Identifier,
    ) -> Option<Option<&TestIdentifier>> {
        self.get(&Key::TestIdentifier {
            app_id: app_id.clone(),
            identifier: identifier.clone(),
        })
        .map(|r| match r {
            Some(Record::TestIdentifier(test)) => Some(test),
            _ => None,
        })
    }

    pub fn counter(&self, key: &str) -> Option<Option<&Versioned<SendCounter>>> {
        self.get(&Key::Counter {
            key: key.to_owned(),
        })
        .map(|r| match r {
            Some(Record::Counter(counter)) => Some(counter),
            _ => None,
        })
    }
}

/// What a request decided: the writes to commit (none: answer at once), and the answer to give
/// once they are committed; or that it needs more records to decide (`need`).
#[derive(Debug)]
pub struct Decision<T> {
    pub writes: Vec<Write>,
    pub answer: Result<T, Error>,
    pub need: Option<Need>,
}

/// Records a decision needs that the request did not read (rare paths: a read more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Keys(Vec<Key>),
    /// Everything in a user's home (its sessions among it).
    Home {
        app_id: AppId,
        home: Home,
    },
}

impl<T> Decision<T> {
    /// Answer `error` and write nothing.
    pub fn refuse(error: Error) -> Self {
        Decision {
            writes: Vec::new(),
            answer: Err(error),
            need: None,
        }
    }

    pub fn commit(writes: Vec<Write>, answer: Result<T, Error>) -> Self {
        Decision {
            writes,
            answer,
            need: None,
        }
    }

    /// Decide again once these records are read.
    pub fn need(need: Need) -> Self {
        Decision {
            writes: Vec::new(),
            answer: Err(Error::Internal("a decision's records were not read".into())),
            need: Some(need),
        }
    }
}

/// A request that gave up without deciding (an error before any write).
impl<T> From<Error> for Decision<T> {
    fn from(error: Error) -> Self {
        Decision::refuse(error)
    }
}

/// Decides on `snapshot` and commits the decision; on a conflict, puts the records the store
/// returned into `snapshot` and decides again. Returns the answer of the decision that was
/// committed (or that wrote nothing), with the writes it committed. `step` names this commit
/// among the request's commits: each decision gets its own token, derived from the request id,
/// the step and the attempt.
pub async fn decide_and_commit<T>(
    deps: &Deps,
    request_id: &RequestId,
    step: &str,
    snapshot: &mut Snapshot,
    mut decide: impl FnMut(&Snapshot) -> Decision<T>,
) -> Result<(Result<T, Error>, Vec<Write>), Unanswered<T>> {
    for attempt in 0..MAX_DECISIONS {
        let decision = decide(snapshot);
        if let Some(need) = decision.need {
            if let Err(error) = read(deps, snapshot, need).await {
                return Err(Unanswered {
                    error,
                    decision: None,
                });
            }
            continue;
        }
        if decision.writes.is_empty() {
            return Ok((decision.answer, Vec::new()));
        }
        let token = CommitToken::derive(&format!("{request_id}#{step}"), attempt);
        match deps.login.commit(&decision.writes, &token).await {
            Ok(()) => return Ok((decision.answer, decision.writes)),
            Err(CommitError::Conflict(conflicts)) => {
                for conflict in conflicts {
                    if let Some(write) = decision.writes.get(conflict.index) {
                        snapshot.set(write.key(), conflict.current);
                    }
                }
            }
            Err(CommitError::Store(error)) => {
                return Err(Unanswered {
                    error: error.into(),
                    decision: Some(decision.answer),
                });
            }
        }
    }
    tracing::warn!(request_id = %request_id, "gave up after too many lost races");
    Err(Unanswered {
        error: Error::ServiceUnavailable,
        decision: None,
    })
}

/// Reads what a decision needs into `snapshot`.
async fn read(deps: &Deps, snapshot: &mut Snapshot, need: Need) -> Result<(), Error> {
    match need {
        Need::Keys(keys) => {
            let loaded = deps.login.load(&keys).await?;
            snapshot.extend(&keys, loaded);
        }
        Need::Home { app_id, home } => {
            let records = deps.login.load_home(&app_id, home).await?;
            snapshot.put_home(&app_id, home, records);
        }
    }
    Ok(())
}

/// A commit that failed without a clear answer (the store was unavailable, or the answer was
/// lost after the store's own retries): its writes may or may not have been applied.
#[derive(Debug)]
pub struct Unanswered<T> {
    /// What to answer.
    pub error: Error,
    /// The answer of the decision whose commit failed so (`None`: no commit failed so; the
    /// request gave up after too many lost races, and nothing of it was written).
    pub decision: Option<Result<T, Error>>,
}

impl<T> From<Unanswered<T>> for Error {
    fn from(unanswered: Unanswered<T>) -> Self {
        unanswered.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn a_snapshot_tells_unread_from_absent() {
        let random = SeededRandom::new(1);
        let app_id = AppId::generate(&random);
        let home = Home::generate(&random);
        let mut snapshot = Snapshot::new();
        assert_eq!(snapshot.user(&app_id, home), None);
        snapshot.set(
            Key::User {
                app_id: app_id.clone(),
                home,
            },
            None,
        );
        assert_eq!(snapshot.user(&app_id, home), Some(None));
    }
}
