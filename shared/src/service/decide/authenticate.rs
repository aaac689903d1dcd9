//! Deciding an OTP authenticate: from the method's user, its codes and the session to extend (as
//! read), to a refusal, or the writes of a right code (code spent, user verified, session made
//! or extended) or of a wrong one (one attempt counted on the code and on the user, whose lock
//! it may set).

use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::crypto::CodeHasher;
use crate::error::Error;
use crate::ids::{AppId, MethodId};
use crate::model::{
    AuthenticationFactor, Codes, PASSWORD_WRITE_SCOPE, Session, SessionAttributes, User,
};
use crate::ports::{Expect, Key, Record, Write};
use crate::random::Random;
use crate::service::Limits;
use crate::service::commit::{Decision, Need, Snapshot};
use crate::service::decide::retry_after;
use crate::service::sessions::{self, SessionGrant};

#[derive(Debug, Clone, Default)]
pub struct AuthenticateRequest {
    pub method_id: String,
    pub code: String,
    pub session_duration_minutes: Option<i64>,
    pub session_token: Option<String>,
    pub session_jwt: Option<String>,
    pub session_custom_claims: Option<Map<String, Value>>,
    pub attributes: SessionAttributes,
}

/// The session a request asks to extend, as the service found it before reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendRef {
    Session(Key),
    /// A JWT that verified but names no session of its user.
    MissingSession,
}

pub struct AuthenticateContext<'a> {
    pub app_id: &'a AppId,
    pub limits: &'a Limits,
    pub code_hasher: &'a CodeHasher,
    pub random: &'a dyn Random,
    pub now: Timestamp,
}

/// A right code's result: the user as the commit left it, the session made or extended with its
/// token (empty when the caller extended by JWT alone), and whether the user's other sessions
/// were revoked (`reset_sessions`).
#[derive(Debug, Clone)]
pub struct AuthenticatePlan {
    pub user: User,
    pub method_id: MethodId,
    pub session: Option<(Session, String)>,
    pub reset_sessions: bool,
}

/// Everything an authenticate reads, in one batch: the method's user and codes (both in the
/// home the method id names) and the session to extend.
pub fn keys_to_load(app_id: &AppId, method_id: &MethodId, extend: Option<&ExtendRef>) -> Vec<Key> {
    let mut keys = vec![
        Key::User {
            app_id: app_id.clone(),
            home: method_id.home(),
        },
        Key::Codes {
            app_id: app_id.clone(),
            method_id: method_id.clone(),
        },
    ];
    if let Some(ExtendRef::Session(key)) = extend {
        keys.push(key.clone());
    }
    keys
}

/// Whether a test identifier's fixed code may still be used.
#[allow(clippy::large_enum_variant)]
enum TestCode {
    /// Not a test identifier's code.
    No,
    /// Valid as far as known: the commit re-checks it.
    Valid(Write),
    /// Expired or deleted: the code is refused like a wrong one.
    Invalid,
}

/// Decides an authenticate on what was read. `duration` is the validated
/// `session_duration_minutes`; `token` the session token presented to extend (if any).
pub fn decide_authenticate(
    ctx: &AuthenticateContext<'_>,
    request: &AuthenticateRequest,
    method_id: &MethodId,
    extend: Option<&ExtendRef>,
    duration: Option<i64>,
    snapshot: &Snapshot,
) -> Decision<AuthenticatePlan> {
    let now = ctx.now;
    let limits = ctx.limits;
    let not_found = || Error::OtpCodeNotFound {
        attempts_remaining: None,
    };
    let Some(user) = snapshot
        .user(ctx.app_id, method_id.home())
        .flatten()
        .filter(|u| u.value.identifier_of(method_id).is_some())
    else {
        return Decision::refuse(not_found());
    };
    let Some(identifier) = user.value.identifier_of(method_id) else {
        return Decision::refuse(not_found());
    };
    // The session to extend must exist and be this user's before the code is spent.
    let extending = match extend {
        None => None,
        Some(ExtendRef::MissingSession) => return Decision::refuse(Error::SessionNotFound),
        Some(ExtendRef::Session(key)) => {
            let Some(session) = snapshot
                .session(key)
                .flatten()
                .filter(|s| s.value.is_live(now))
            else {
                return Decision::refuse(Error::SessionNotFound);
            };
            if session.value.user_id != user.value.id {
                return Decision::refuse(Error::SessionUserMismatch);
            }
            if let Some(patch) = &request.session_custom_claims
                && let Err(error) = sessions::validate_custom_claims(&sessions::merged_claims(
                    &session.value.custom_claims,
                    patch,
                ))
            {
                return Decision::refuse(error);
            }
            Some(session)
        }
    };
    if let Some(lock) = user.value.active_lock(now) {
        return Decision::refuse(Error::UserLockLimitReached {
            retry_after_seconds: retry_after(now, lock.expires_at),
        });
    }
    let Some(codes) = snapshot.codes(ctx.app_id, method_id).flatten() else {
        return Decision::refuse(not_found());
    };
    let Some(current) = &codes.value.current else {
        return Decision::refuse(not_found());
    };
    if !current.is_live(now, limits.max_code_attempts) {
        return Decision::refuse(Error::UnableToAuthOtpCode);
    }
    // A test identifier's code stops working when the test identifier ends or is deleted.
    let test = match &current.test_identifier {
        None => TestCode::No,
        Some(id) => match snapshot.test_identifier(ctx.app_id, &identifier) {
            Some(Some(t)) if &t.id != id || t.valid_until <= now => TestCode::Invalid,
            Some(None) => TestCode::Invalid,
            _ => TestCode::Valid(Write::TestIdentifierValid {
                app_id: ctx.app_id.clone(),
                identifier: identifier.clone(),
                id: id.clone(),
                now,
            }),
        },
    };
    let matches = !matches!(test, TestCode::Invalid)
        && ctx.code_hasher.matches(
            &current.hash_context,
            request.code.trim(),
            &current.code_hash,
        );

    let mut spent = codes.value.clone();
    let mut after = user.value.clone();
    if !matches {
        let attempts = current.attempts + 1;
        if let Some(c) = spent.current.as_mut() {
            c.attempts = attempts;
        }
        after.record_failure(now, limits.user_lock_threshold, limits.user_lock_seconds);
        return Decision::commit(
            vec![
                put_codes(spent, codes.rev),
                Write::PutUser {
                    user: after,
                    expect: Expect::Rev(user.rev),
                },
            ],
            Err(Error::OtpCodeNotFound {
                attempts_remaining: Some(limits.max_code_attempts.saturating_sub(attempts)),
            }),
        );
    }

    // The first verification of a method of a user who already had another one (and so may have
    // sessions, made through that one): the user's other sessions are revoked, as whoever made
    // them may not hold this method. Its home is read whole for it (a read more, on this path
    // only).
    let first_verification = !user.value.is_verified(method_id);
    let mut revoked = Vec::new();
    if first_verification && user.value.has_other_verified(method_id) {
        let home = user.value.id.home();
        let Some(sessions) = snapshot.sessions_of(ctx.app_id, home) else {
            return Decision::need(Need::Home {
                app_id: ctx.app_id.clone(),
                home,
            });
        };
        let extended = match extend {
            Some(ExtendRef::Session(key)) => Some(key),
            _ => None,
        };
        revoked = sessions
            .into_iter()
            .filter(|s| s.value.user_id == user.value.id && s.value.is_live(now))
            .filter(|s| extended != Some(&Record::Session((*s).clone()).key()))
            .map(|s| Write::DeleteSession {
                app_id: ctx.app_id.clone(),
                home,
                token_hash: s.value.token_hash,
                expect: Expect::Rev(s.rev),
            })
            .collect();
    }
    // The identifier was taken from this user meanwhile (its owner record says so).
    if let Some(owner) = snapshot.owner(ctx.app_id, &identifier)
        && owner.is_none_or(|o| &o.value.method_id != method_id)
    {
        return Decision::refuse(not_found());
    }

    if let Some(c) = spent.current.as_mut() {
        c.consumed = true;
    }
    after.record_success(method_id);
    let grant = SessionGrant {
        factor: AuthenticationFactor {
            method_id: method_id.clone(),
            identifier: identifier.clone(),
            last_authenticated_at: now,
        },
        scopes: if current.grant_change_password {
            vec![PASSWORD_WRITE_SCOPE.to_owned()]
        } else {
            Vec::new()
        },
        attributes: request.attributes.clone(),
    };
    let mut writes = vec![
        put_codes(spent, codes.rev),
        Write::PutUser {
            user: after.clone(),
            expect: Expect::Rev(user.rev),
        },
    ];
    let session = match (extending, duration) {
        (Some(session), duration) => {
            let extended = match sessions::accessed(
                session.value.clone(),
                now,
                Some(grant),
                duration,
                request.session_custom_claims.as_ref(),
            ) {
                Ok(extended) => extended,
                Err(error) => return Decision::refuse(error),
            };
            writes.push(Write::PutSession {
                session: extended.clone(),
                expect: Expect::Rev(session.rev),
            });
            let token = request.session_token.clone().unwrap_or_default();
            Some((extended, token))
        }
        (None, Some(minutes)) => {
            let (session, token) = sessions::new_session(
                ctx.random,
                &after,
                grant,
                minutes,
                request.session_custom_claims.clone().unwrap_or_default(),
                now,
            );
            writes.push(Write::PutSession {
                session: session.clone(),
                expect: Expect::Absent,
            });
            Some((session, token))
        }
        (None, None) => None,
    };
    if let TestCode::Valid(check) = test {
        writes.push(check);
    }
    // A verified SMS code counts for its region's verification rate (the floor of the budgets);
    // a test identifier's code is never sent, so it counts for nothing.
    if let (crate::identifiers::Identifier::Phone(number), None) =
        (&identifier, &current.test_identifier)
        && let Some(write) = super::budget::count_verified(ctx.app_id, number, now)
    {
        writes.push(write);
    }
    if first_verification {
        // No longer pending: the identifier now routes logins to this user.
        writes.push(Write::ConfirmOwner {
            app_id: ctx.app_id.clone(),
            identifier: identifier.clone(),
            method_id: method_id.clone(),
        });
    }
    let reset_sessions = !revoked.is_empty();
    writes.extend(revoked);
    Decision::commit(
        writes,
        Ok(AuthenticatePlan {
            user: after,
            method_id: method_id.clone(),
            session,
            reset_sessions,
        }),
    )
}

fn put_codes(codes: Codes, rev: u64) -> Write {
    Write::PutCodes {
        codes,
        expect: Expect::Rev(rev),
    }
}

#[cfg(test)]
mod tests;
