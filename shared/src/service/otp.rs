//! Sending codes and authenticating them: load (one batched read), decide
//! (`service::decide`), commit (one atomic write), then deliver.

use crate::error::Error;
use crate::ids::{MethodId, RequestId, SessionId, UserId};
use crate::model::User;
use crate::ports::{AppData, Key, Write};
use crate::service::commit::{Snapshot, Unanswered, decide_and_commit};
use crate::service::decide;
use crate::service::decide::authenticate::{
    AuthenticateContext, AuthenticatePlan, ExtendRef, decide_authenticate,
};
use crate::service::decide::send::{
    Outgoing, SendContext, SendPlan, TargetRef, Undo, decide_send, decide_undo,
};
use crate::service::sessions::{self, IssuedSession, SessionRef};
use crate::service::{Deps, signing};

pub use crate::service::decide::authenticate::AuthenticateRequest;
pub use crate::service::decide::send::{SendMode, SendOutcome, SendRequest, SendTarget};

/// Where a send's target points, as far as it is known without reading: a JWT names a session
/// by id, found by reading its home (`NeedsHome`).
enum TargetPlan {
    Known(Option<TargetRef>),
    NeedsHome(SessionId),
}

fn target_plan(deps: &Deps, app: &AppData, request: &SendRequest) -> Result<TargetPlan, Error> {
    let SendMode::Send {
        target: Some(target),
    } = &request.mode
    else {
        return Ok(TargetPlan::Known(None));
    };
    let (token, jwt) = match target {
        SendTarget::UserId(id) => {
            let user_id = UserId::parse(id).ok_or(Error::UserNotFound)?;
            return Ok(TargetPlan::Known(Some(TargetRef::User(user_id))));
        }
        SendTarget::SessionToken(token) => (Some(token.as_str()), None),
        SendTarget::SessionJwt(jwt) => (None, Some(jwt.as_str())),
    };
    Ok(match sessions::session_ref(deps, app, token, jwt)? {
        SessionRef::Token { key, .. } => TargetPlan::Known(Some(TargetRef::Session(key))),
        SessionRef::Jwt(session_id) => TargetPlan::NeedsHome(session_id),
    })
}

/// Reads `keys` and, at the same time, the home of the session a JWT named (if any): one round.
/// Returns what was read, and the key of that session (`None`: the JWT named none that exists).
async fn load_with_home(
    deps: &Deps,
    app_id: &crate::ids::AppId,
    keys: &[Key],
    session_id: Option<&SessionId>,
) -> Result<(Snapshot, Option<Option<Key>>), Error> {
    let batch = async {
        if keys.is_empty() {
            Ok(Vec::new())
        } else {
            deps.login.load(keys).await
        }
    };
    match session_id {
        None => Ok((Snapshot::from_loaded(keys, batch.await?), None)),
        Some(session_id) => {
            let (loaded, found) =
                tokio::join!(batch, sessions::find_by_id(deps, app_id, session_id));
            let (key, home) = found?;
            let mut snapshot = Snapshot::from_loaded(keys, loaded?);
            snapshot.merge(home);
            Ok((snapshot, Some(key)))
        }
    }
}

/// Sends a new code to the identifier, replacing the method's current code. One batched read
/// (who holds the identifier, whether it is a test identifier, the send counters, the target),
/// one commit (the user or method if new, the code, the counted send), then the delivery; if
/// that fails, one commit puts the previous code back, gives back the counted send and removes
/// what the send made, so that nothing undelivered stays usable or counted.
pub async fn send_code(
    deps: &Deps,
    app: &AppData,
    request_id: &RequestId,
    request: SendRequest,
) -> Result<SendOutcome, Error> {
    if let Some(minutes) = request.expiration_minutes
        && !(1..=10).contains(&minutes)
    {
        return Err(Error::InvalidExpirationMinutes);
    }
    let limits = &deps.settings.limits;
    let plan = target_plan(deps, app, &request)?;
    let (known, jwt_session) = match &plan {
        TargetPlan::Known(target) => (target.clone(), None),
        TargetPlan::NeedsHome(session_id) => (None, Some(session_id)),
    };
    let keys = crate::service::decide::send::keys_to_load(
        &app.app.id,
        &request,
        known.as_ref(),
        limits,
        deps.clock.now(),
    );
    let (mut snapshot, found) = load_with_home(deps, &app.app.id, &keys, jwt_session).await?;
    let target = match found {
        None => known,
        Some(Some(key)) => Some(TargetRef::Session(key)),
        Some(None) => Some(TargetRef::MissingSession),
    };
    let now = deps.clock.now();
    let ctx = SendContext {
        app,
        limits,
        code_hasher: deps.keys.code_hasher()?,
        random: deps.random.as_ref(),
        default_email_from: &deps.settings.default_email_from,
        now,
    };
    let committed = decide_and_commit(deps, request_id, "send", &mut snapshot, |snapshot| {
        decide_send(&ctx, &request, target.as_ref(), snapshot)
    })
    .await;
    let plan: SendPlan = match committed {
        Ok((answer, _)) => answer?,
        Err(unanswered) => {
            // The commit may have landed with its answer lost: a code nobody will receive must
            // not replace the one the user has, nor count against the limits.
            if let Some(Ok(plan)) = &unanswered.decision {
                undo(deps, request_id, &plan.undo, false).await;
            }
            return Err(unanswered.error);
        }
    };
    if plan.outcome.user_created {
        tracing::info!(app_id = %app.app.id, user_id = %plan.outcome.user_id, "user created");
    }
    if let Err(error) = deliver(deps, &plan).await {
        undo(deps, request_id, &plan.undo, true).await;
        return Err(error);
    }
    tracing::info!(
        app_id = %app.app.id,
        user_id = %plan.outcome.user_id,
        method_id = %plan.outcome.method_id,
        to = %request.identifier.redacted(),
        test = plan.test,
        "code sent"
    );
    Ok(plan.outcome)
}

async fn deliver(deps: &Deps, plan: &SendPlan) -> Result<(), Error> {
    match &plan.message {
        Outgoing::Sms(sms) => {
            if plan.test {
                deps.test_messages.record_sms(sms);
                return Ok(());
            }
            deps.sms.send_sms(sms).await.map_err(|e| {
                tracing::warn!(to = %sms.to.redacted(), error = %e, "SMS delivery failed");
                Error::SmsDeliveryFailed
            })
        }
        Outgoing::Email(mail) => {
            if plan.test {
                deps.test_messages.record_email(mail);
                return Ok(());
            }
            deps.email.send_email(mail).await.map_err(|e| {
                tracing::warn!(to = %mail.to.redacted(), error = %e, "email delivery failed");
                Error::EmailDeliveryFailed
            })
        }
    }
}

/// Takes back a send whose message was not delivered (`landed`), or whose commit went
/// unanswered (it may have been applied): reads the method's codes, then one commit (see
/// `decide_undo`), decided again on what a conflict returns. Best effort: the request answers its
/// error either way; a code left behind was never delivered, and expires.
async fn undo(deps: &Deps, request_id: &RequestId, undo: &Undo, landed: bool) {
    let keys = decide::send::undo_keys(undo);
    let mut snapshot = match deps.login.load(&keys).await {
        Ok(loaded) => Snapshot::from_loaded(&keys, loaded),
        Err(error) => {
            tracing::error!(method_id = %undo.method_id, error = %error, "could not read the codes of an undelivered send");
            return;
        }
    };
    let result = decide_and_commit(deps, request_id, "undo", &mut snapshot, |snapshot| {
        decide_undo(undo, snapshot, landed)
    })
    .await;
    match result {
        Ok((Ok(()), _)) => {}
        Ok((Err(error), _)) | Err(Unanswered { error, .. }) => {
            tracing::error!(method_id = %undo.method_id, error = %error, "could not take back an undelivered send");
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthenticateOutcome {
    pub user: User,
    pub method_id: MethodId,
    pub session: Option<IssuedSession>,
    /// The user's other sessions were revoked (a first verification, see `decide_authenticate`).
    pub reset_sessions: bool,
}

/// Checks a code: one batched read (the method's user and codes, the session to extend), one
/// commit. A right code's commit spends the code, records the success and makes or extends the
/// session, on condition that the code and the user are as read (so of any number of
/// concurrent right codes exactly one succeeds, and none while the user is locked); a wrong
/// code's commit counts the attempt on the code and on the user, on the same condition (so the
/// counts are exact under concurrency, and the lock comes at exactly the threshold).
pub async fn authenticate(
    deps: &Deps,
    app: &AppData,
    request_id: &RequestId,
    request: AuthenticateRequest,
) -> Result<AuthenticateOutcome, Error> {
    let app_id = &app.app.id;
    let duration = request
        .session_duration_minutes
        .map(sessions::validate_duration)
        .transpose()?;
    if let Some(claims) = &request.session_custom_claims {
        sessions::validate_custom_claims(claims)?;
    }
    let Some(method_id) = MethodId::parse(&request.method_id) else {
        return Err(Error::OtpCodeNotFound {
            attempts_remaining: None,
        });
    };
    let extending = request
        .session_token
        .as_deref()
        .is_some_and(|t| !t.is_empty())
        || request
            .session_jwt
            .as_deref()
            .is_some_and(|t| !t.is_empty());
    let session = if extending {
        Some(sessions::session_ref(
            deps,
            app,
            request.session_token.as_deref(),
            request.session_jwt.as_deref(),
        )?)
    } else {
        None
    };
    let (known, jwt_session) = match &session {
        None => (None, None),
        Some(SessionRef::Token { key, .. }) => (Some(ExtendRef::Session(key.clone())), None),
        Some(SessionRef::Jwt(session_id)) => (None, Some(session_id)),
    };
    let keys =
        crate::service::decide::authenticate::keys_to_load(app_id, &method_id, known.as_ref());
    let (mut snapshot, found) = load_with_home(deps, app_id, &keys, jwt_session).await?;
    let extend = match found {
        None => known,
        Some(Some(key)) => Some(ExtendRef::Session(key)),
        Some(None) => Some(ExtendRef::MissingSession),
    };
    if duration.is_some() || extend.is_some() {
        // A session's JWT will be signed: a key that cannot sign must fail the request before
        // the code is spent, not after.
        signing::signer(deps, app)?;
    }
    let now = deps.clock.now();
    let ctx = AuthenticateContext {
        app_id,
        limits: &deps.settings.limits,
        code_hasher: deps.keys.code_hasher()?,
        random: deps.random.as_ref(),
        now,
    };
    // A commit without an answer leaves either the state of a success (code spent, session made)
    // or of nothing at all: both are clean, so it is answered as unavailable and left.
    let (answer, written) = decide_and_commit(
        deps,
        request_id,
        "authenticate",
        &mut snapshot,
        |snapshot| {
            decide_authenticate(
                &ctx,
                &request,
                &method_id,
                extend.as_ref(),
                duration,
                snapshot,
            )
        },
    )
    .await?;
    let plan: AuthenticatePlan = match answer {
        Ok(plan) => plan,
        Err(error) => {
            let locked_now = written.iter().find_map(|write| match write {
                Write::PutUser { user, .. } => user
                    .lock
                    .filter(|lock| lock.created_at == now)
                    .map(|_| &user.id),
                _ => None,
            });
            if let Some(user_id) = locked_now {
                tracing::warn!(app_id = %app_id, user_id = %user_id, "user locked after too many wrong codes");
            }
            return Err(error);
        }
    };
    let session = match plan.session {
        Some((session, token)) => Some(sessions::issue(deps, app, session, token)?),
        None => None,
    };
    tracing::info!(app_id = %app_id, user_id = %plan.user.id, method_id = %method_id, "code authenticated");
    if plan.reset_sessions {
        tracing::info!(app_id = %app_id, user_id = %plan.user.id, "other sessions revoked at a method's first verification");
    }
    Ok(AuthenticateOutcome {
        user: plan.user,
        method_id,
        session,
        reset_sessions: plan.reset_sessions,
    })
}
