//! Reading and deleting users.

use crate::error::Error;
use crate::ids::{AppId, RequestId, UserId};
use crate::model::User;
use crate::ports::{Expect, HomeRecords, Key, Record, Write};
use crate::service::Deps;
use crate::service::commit::{Decision, Snapshot, decide_and_commit};

/// Writes one commit may hold (DynamoDB's limit on a transaction).
pub const MAX_WRITES_PER_COMMIT: usize = 100;

pub async fn get(deps: &Deps, app_id: &AppId, user_id: &str) -> Result<User, Error> {
    let user_id = UserId::parse(user_id).ok_or(Error::UserNotFound)?;
    let key = Key::User {
        app_id: app_id.clone(),
        home: user_id.home(),
    };
    match deps.login.load(std::slice::from_ref(&key)).await?.pop() {
        Some(Some(Record::User(user))) if user.value.id == user_id => Ok(user.value),
        _ => Err(Error::UserNotFound),
    }
}

/// Deletes the user with everything in its home (its codes and sessions) and the records of
/// its identifiers. The home is read in one consistent read; sessions and codes go first (in
/// commits of at most `MAX_WRITES_PER_COMMIT`), the user and its identifiers last, in one commit
/// on condition that the user did not change meanwhile (a session is only ever made by a commit
/// that changes the user), else it starts again. So once it answers, no session of the user is
/// left.
pub async fn delete(
    deps: &Deps,
    app_id: &AppId,
    request_id: &RequestId,
    user_id: &str,
) -> Result<UserId, Error> {
    let user_id = UserId::parse(user_id).ok_or(Error::UserNotFound)?;
    let home = user_id.home();
    let mut round = 0u32;
    loop {
        let records = deps.login.load_home(app_id, home).await?;
        let Some(user) = records.user.as_ref().filter(|u| u.value.id == user_id) else {
            return Err(Error::UserNotFound);
        };
        let (mut early, mut last) = deletion_writes(&records, &user.value, user.rev);
        // Everything in one commit when it fits.
        if early.len() + last.len() <= MAX_WRITES_PER_COMMIT {
            last.append(&mut early);
        }
        for (index, chunk) in early.chunks(MAX_WRITES_PER_COMMIT).enumerate() {
            let mut snapshot = Snapshot::new();
            let chunk = chunk.to_vec();
            let step = format!("delete-{round}-{index}");
            decide_and_commit(deps, request_id, &step, &mut snapshot, |_| {
                Decision::<()>::commit(chunk.clone(), Ok(()))
            })
            .await?
            .0?;
        }
        // The user's own commit is decided once: if the user changed, read the home again.
        let mut decided = false;
        let mut snapshot = Snapshot::new();
        let step = format!("delete-{round}");
        let (answer, _) = decide_and_commit(deps, request_id, &step, &mut snapshot, |_| {
            if decided {
                return Decision::refuse(Error::Conflict("the user changed".into()));
            }
            decided = true;
            Decision::commit(last.clone(), Ok(()))
        })
        .await?;
        match answer {
            Ok(()) => {
                tracing::info!(app_id = %app_id, user_id = %user_id, "user deleted");
                return Ok(user_id);
            }
            Err(Error::Conflict(_)) if round < 10 => round += 1,
            Err(Error::Conflict(_)) => return Err(Error::ServiceUnavailable),
            Err(error) => return Err(error),
        }
    }
}

/// The writes that delete a user: its sessions and codes (any state: they go), then the user
/// (if still at `rev`), the records of its identifiers and the codes of every method it has.
fn deletion_writes(records: &HomeRecords, user: &User, rev: u64) -> (Vec<Write>, Vec<Write>) {
    let app_id = &user.app_id;
    let home = user.id.home();
    let mut early: Vec<Write> = records
        .sessions
        .iter()
        .filter(|s| s.value.user_id == user.id)
        .map(|s| Write::DeleteSession {
            app_id: app_id.clone(),
            home,
            token_hash: s.value.token_hash,
            expect: Expect::Any,
        })
        .collect();
    let methods = user.method_ids();
    early.extend(
        records
            .codes
            .iter()
            .filter(|c| !methods.contains(&c.value.method_id))
            .map(|c| Write::DeleteCodes {
                app_id: app_id.clone(),
                method_id: c.value.method_id.clone(),
                expect: Expect::Any,
            }),
    );
    let mut last = vec![Write::DeleteUser {
        app_id: app_id.clone(),
        user_id: user.id.clone(),
        expect: Expect::Rev(rev),
    }];
    last.extend(methods.iter().filter_map(|method_id| {
        user.identifier_of(method_id)
            .map(|identifier| Write::DeleteOwner {
                app_id: app_id.clone(),
                identifier,
                expect: Expect::Any,
            })
    }));
    // The codes of its methods go with the user when they fit (so that a code sent just before
    // goes too); a user with more methods than that has the rest deleted first.
    for method_id in methods {
        let write = Write::DeleteCodes {
            app_id: app_id.clone(),
            method_id,
            expect: Expect::Any,
        };
        if last.len() < MAX_WRITES_PER_COMMIT {
            last.push(write);
        } else {
            early.push(write);
        }
    }
    (early, last)
}
