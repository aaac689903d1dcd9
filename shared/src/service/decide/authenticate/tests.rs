//! Every rule of an authenticate, decided on hand-made records: no store, no clock, no I/O.

use super::*;
use crate::crypto::new_session_token;
use crate::identifiers::{Identifier, PhoneNumber};
use crate::ids::{ChallengeId, ConfigId, PhoneId, SessionId, TestIdentifierId, UserId};
use crate::model::{Challenge, Channel, Codes, Lock, TestIdentifier, UserStatus};
use crate::ports::{Record, Versioned};
use crate::random::SeededRandom;
use crate::service::commit::Need;

const NOW: Timestamp = Timestamp(1_800_000_000);

struct World {
    app_id: AppId,
    limits: Limits,
    hasher: CodeHasher,
    random: SeededRandom,
    user: Versioned<User>,
    method_id: MethodId,
}

impl World {
    fn new() -> Self {
        let random = SeededRandom::new(9);
        let app_id = AppId::generate(&random);
        let user_id = UserId::generate(&random);
        let method_id = MethodId::Phone(PhoneId::generate_in(&random, user_id.home()));
        let mut user = User {
            id: user_id,
            app_id: app_id.clone(),
            status: UserStatus::Pending,
            created_at: NOW,
            phone_numbers: Vec::new(),
            emails: Vec::new(),
            failed_attempts: 0,
            lock: None,
        };
        user.add_method(
            method_id.clone(),
            Identifier::Phone(PhoneNumber::parse("+12025550100").unwrap()),
        );
        World {
            app_id,
            limits: Limits::default(),
            hasher: CodeHasher::new(&[3; 32]).unwrap(),
            random,
            user: Versioned::new(user, 4),
            method_id,
        }
    }

    fn ctx(&self) -> AuthenticateContext<'_> {
        AuthenticateContext {
            app_id: &self.app_id,
            limits: &self.limits,
            code_hasher: &self.hasher,
            random: &self.random,
            now: NOW,
        }
    }

    /// A live code "123456" for the method, with `attempts` wrong attempts.
    fn code(&self, attempts: u32) -> Challenge {
        let id = ChallengeId::generate(&self.random);
        Challenge {
            code_hash: self.hasher.hash(id.as_str(), "123456"),
            hash_context: id.as_str().to_owned(),
            id,
            app_id: self.app_id.clone(),
            user_id: self.user.value.id.clone(),
            method_id: self.method_id.clone(),
            channel: Channel::Sms,
            config_id: ConfigId::generate(&self.random, NOW),
            grant_change_password: false,
            created_at: NOW,
            expires_at: NOW.plus_seconds(120),
            attempts,
            consumed: false,
            test_identifier: None,
        }
    }

    fn snapshot(&self, user: Option<&Versioned<User>>, current: Option<Challenge>) -> Snapshot {
        let mut snapshot = Snapshot::new();
        snapshot.set(
            Key::User {
                app_id: self.app_id.clone(),
                home: self.method_id.home(),
            },
            user.cloned().map(Record::User),
        );
        snapshot.set(
            Key::Codes {
                app_id: self.app_id.clone(),
                method_id: self.method_id.clone(),
            },
            current.map(|c| {
                Record::Codes(Versioned::new(
                    Codes {
                        app_id: self.app_id.clone(),
                        method_id: self.method_id.clone(),
                        current: Some(c),
                        previous: Vec::new(),
                    },
                    2,
                ))
            }),
        );
        snapshot
    }

    fn decide(
        &self,
        code: &str,
        duration: Option<i64>,
        extend: Option<&ExtendRef>,
        snapshot: &Snapshot,
    ) -> Decision<AuthenticatePlan> {
        let request = AuthenticateRequest {
            method_id: self.method_id.to_string(),
            code: code.into(),
            ..AuthenticateRequest::default()
        };
        decide_authenticate(
            &self.ctx(),
            &request,
            &self.method_id,
            extend,
            duration,
            snapshot,
        )
    }
}

fn refused(decision: Decision<AuthenticatePlan>) -> Error {
    assert!(decision.writes.is_empty(), "a refusal writes nothing");
    match decision.answer {
        Err(error) => error,
        Ok(_) => panic!("expected a refusal"),
    }
}

#[test]
fn a_right_code_spends_the_code_verifies_the_method_and_starts_a_session() {
    let world = World::new();
    let snapshot = world.snapshot(Some(&world.user), Some(world.code(2)));
    let decision = world.decide(" 123456 ", Some(60), None, &snapshot);
    let plan = decision.answer.as_ref().expect("a success");
    assert_eq!(plan.user.status, UserStatus::Active);
    assert!(plan.user.phone_numbers[0].verified);
    assert_eq!(plan.user.failed_attempts, 0);
    let (session, token) = plan.session.as_ref().expect("a session");
    assert_eq!(session.expires_at, NOW.plus_minutes(60));
    assert_eq!(session.id.home(), world.user.value.id.home());
    assert_eq!(
        crate::ids::Home::of_session_token(token),
        Some(world.user.value.id.home())
    );
    let [
        Write::PutCodes {
            codes,
            expect: code_expect,
        },
        Write::PutUser {
            expect: user_expect,
            ..
        },
        Write::PutSession {
            expect: session_expect,
            ..
        },
        Write::Tally { name, add: 1, .. },
        Write::ConfirmOwner { method_id, .. },
    ] = decision.writes.as_slice()
    else {
        panic!("{:?}", decision.writes)
    };
    assert!(codes.current.as_ref().unwrap().consumed);
    assert_eq!(*code_expect, Expect::Rev(2));
    assert_eq!(*user_expect, Expect::Rev(4));
    assert_eq!(*session_expect, Expect::Absent);
    assert_eq!(
        method_id, &world.method_id,
        "a first verification ends the identifier's pending attachment"
    );
    assert!(
        !plan.reset_sessions,
        "a user's only method: nobody else's sessions"
    );
    assert!(
        name.starts_with("verified#region#US#"),
        "a verified SMS code counts for its region's rate: {name}"
    );

    // Without a duration: no session.
    let decision = world.decide("123456", None, None, &snapshot);
    assert!(decision.answer.unwrap().session.is_none());
    assert_eq!(decision.writes.len(), 4);

    // Verified already: no owner write.
    let mut verified = world.user.clone();
    verified.value.record_success(&world.method_id);
    let snapshot = world.snapshot(Some(&verified), Some(world.code(0)));
    let decision = world.decide("123456", None, None, &snapshot);
    assert_eq!(decision.writes.len(), 3, "{:?}", decision.writes);
}

#[test]
fn a_first_verification_on_a_user_with_another_verified_method_revokes_its_other_sessions() {
    let world = World::new();
    // The user's phone is verified (it has sessions through it); an email was attached.
    let mut user = world.user.clone();
    user.value.record_success(&world.method_id);
    let home = user.value.id.home();
    let email_id = MethodId::Email(crate::ids::EmailId::generate_in(&world.random, home));
    user.value.add_method(
        email_id.clone(),
        Identifier::Email(crate::identifiers::EmailAddress::parse("ann@example.com").unwrap()),
    );
    let code = Challenge {
        method_id: email_id.clone(),
        ..world.code(0)
    };
    let mut snapshot = Snapshot::new();
    snapshot.put(Record::User(user.clone()));
    snapshot.put(Record::Codes(Versioned::new(
        Codes {
            app_id: world.app_id.clone(),
            method_id: email_id.clone(),
            current: Some(code),
            previous: Vec::new(),
        },
        1,
    )));
    let request = AuthenticateRequest {
        method_id: email_id.to_string(),
        code: "123456".into(),
        ..AuthenticateRequest::default()
    };
    let decide = |snapshot: &Snapshot| {
        decide_authenticate(&world.ctx(), &request, &email_id, None, Some(30), snapshot)
    };
    let decision = decide(&snapshot);
    assert_eq!(
        decision.need,
        Some(Need::Home {
            app_id: world.app_id.clone(),
            home
        }),
        "the user's sessions are read first"
    );
    assert!(decision.writes.is_empty());

    let session = |n: u8, expires_in: i64| {
        let mut s = crate::service::sessions::new_session(
            &world.random,
            &user.value,
            crate::service::sessions::SessionGrant {
                factor: AuthenticationFactor {
                    method_id: world.method_id.clone(),
                    identifier: user.value.identifier_of(&world.method_id).unwrap(),
                    last_authenticated_at: NOW,
                },
                scopes: Vec::new(),
                attributes: SessionAttributes::default(),
            },
            60,
            Map::new(),
            NOW.plus_seconds(-100),
        )
        .0;
        s.token_hash = [n; 32];
        s.expires_at = NOW.plus_seconds(expires_in);
        Versioned::new(s, u64::from(n))
    };
    snapshot.put_home(
        &world.app_id,
        home,
        crate::ports::HomeRecords {
            user: Some(user.clone()),
            codes: Vec::new(),
            sessions: vec![session(1, 600), session(2, 600), session(3, -1)],
        },
    );
    let decision = decide(&snapshot);
    let plan = decision.answer.as_ref().expect("a success");
    assert!(plan.reset_sessions);
    let deleted: Vec<&Write> = decision
        .writes
        .iter()
        .filter(|w| matches!(w, Write::DeleteSession { .. }))
        .collect();
    assert_eq!(deleted.len(), 2, "the live ones: {:?}", decision.writes);
    assert!(
        decision.writes.iter().any(|w| matches!(
            w,
            Write::PutSession {
                expect: Expect::Absent,
                ..
            }
        )),
        "the new session is made"
    );
}

/// Table: the code's state, the user's, the code presented, and what is answered.
#[test]
fn refusals_and_wrong_codes() {
    let world = World::new();
    let mut locked = world.user.clone();
    locked.value.lock = Some(Lock {
        created_at: NOW.plus_seconds(-10),
        expires_at: NOW.plus_seconds(50),
    });
    let mut expired_lock = world.user.clone();
    expired_lock.value.lock = Some(Lock {
        created_at: NOW.plus_seconds(-4000),
        expires_at: NOW.plus_seconds(-400),
    });
    let mut other_user = world.user.clone();
    other_user.value.id = UserId::generate(&world.random);
    other_user.value.phone_numbers.clear();
    let expired = Challenge {
        expires_at: NOW,
        ..world.code(0)
    };
    let used = Challenge {
        consumed: true,
        ..world.code(0)
    };
    // name, the user as read, the current code, the code presented, the answer
    type Case<'a> = (
        &'a str,
        Option<&'a Versioned<User>>,
        Option<Challenge>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no user in the method's home",
            None,
            Some(world.code(0)),
            "123456",
            "otp_code_not_found",
        ),
        (
            "a user without the method",
            Some(&other_user),
            Some(world.code(0)),
            "123456",
            "otp_code_not_found",
        ),
        (
            "no code",
            Some(&world.user),
            None,
            "123456",
            "otp_code_not_found",
        ),
        (
            "locked, right code",
            Some(&locked),
            Some(world.code(0)),
            "123456",
            "user_lock_limit_reached",
        ),
        (
            "locked, wrong code",
            Some(&locked),
            Some(world.code(0)),
            "000000",
            "user_lock_limit_reached",
        ),
        (
            "expired, right code",
            Some(&world.user),
            Some(expired.clone()),
            "123456",
            "unable_to_auth_otp_code",
        ),
        (
            "expired, wrong code",
            Some(&world.user),
            Some(expired),
            "000000",
            "unable_to_auth_otp_code",
        ),
        (
            "used",
            Some(&world.user),
            Some(used),
            "123456",
            "unable_to_auth_otp_code",
        ),
        (
            "attempts spent, right code",
            Some(&world.user),
            Some(world.code(5)),
            "123456",
            "unable_to_auth_otp_code",
        ),
        (
            "a lock that has expired is no lock",
            Some(&expired_lock),
            Some(world.code(0)),
            "123456",
            "success",
        ),
    ];
    for (name, user, code, presented, expected) in cases {
        let snapshot = world.snapshot(user, code);
        let decision = world.decide(presented, None, None, &snapshot);
        let got = match &decision.answer {
            Ok(_) => "success",
            Err(Error::OtpCodeNotFound { .. }) => "otp_code_not_found",
            Err(Error::UserLockLimitReached { .. }) => "user_lock_limit_reached",
            Err(Error::UnableToAuthOtpCode) => "unable_to_auth_otp_code",
            Err(other) => panic!("{name}: {other:?}"),
        };
        assert_eq!(got, expected, "{name}");
        if expected != "success" {
            refused(decision);
        }
    }
}

#[test]
fn a_wrong_code_counts_on_the_code_and_on_the_user_and_the_tenth_locks() {
    let world = World::new();
    let snapshot = world.snapshot(Some(&world.user), Some(world.code(3)));
    let decision = world.decide("000000", None, None, &snapshot);
    assert!(matches!(
        decision.answer,
        Err(Error::OtpCodeNotFound {
            attempts_remaining: Some(1)
        })
    ));
    let [
        Write::PutCodes {
            codes,
            expect: Expect::Rev(2),
        },
        Write::PutUser {
            user,
            expect: Expect::Rev(4),
        },
    ] = decision.writes.as_slice()
    else {
        panic!("{:?}", decision.writes)
    };
    assert_eq!(codes.current.as_ref().unwrap().attempts, 4);
    assert_eq!(user.failed_attempts, 1);
    assert!(user.lock.is_none());

    let mut ninth = world.user.clone();
    ninth.value.failed_attempts = 9;
    let snapshot = world.snapshot(Some(&ninth), Some(world.code(0)));
    let decision = world.decide("000000", None, None, &snapshot);
    assert!(
        matches!(decision.answer, Err(Error::OtpCodeNotFound { .. })),
        "the tenth is answered 404"
    );
    let Some(Write::PutUser { user, .. }) = decision.writes.get(1) else {
        panic!("{:?}", decision.writes)
    };
    assert_eq!(
        user.lock,
        Some(Lock {
            created_at: NOW,
            expires_at: NOW.plus_seconds(3600)
        })
    );
    assert_eq!(user.failed_attempts, 0);
}

#[test]
fn extending_a_session_needs_it_live_and_the_users() {
    let world = World::new();
    let home = world.user.value.id.home();
    let (token, token_hash) = new_session_token(&world.random, home);
    let key = Key::Session {
        app_id: world.app_id.clone(),
        home,
        token_hash,
    };
    let session = |user_id: UserId, expires_in: i64| {
        Versioned::new(
            Session {
                id: SessionId::generate_in(&world.random, home),
                app_id: world.app_id.clone(),
                user_id,
                token_hash,
                started_at: NOW.plus_seconds(-100),
                last_accessed_at: NOW.plus_seconds(-100),
                expires_at: NOW.plus_seconds(expires_in),
                attributes: SessionAttributes::default(),
                custom_claims: Map::new(),
                authentication_factors: Vec::new(),
                granted_scopes: Vec::new(),
            },
            8,
        )
    };
    let extend = ExtendRef::Session(key.clone());
    let request = AuthenticateRequest {
        method_id: world.method_id.to_string(),
        code: "123456".into(),
        session_token: Some(token.clone()),
        ..AuthenticateRequest::default()
    };
    let decide = |stored: Option<Versioned<Session>>| {
        let mut snapshot = world.snapshot(Some(&world.user), Some(world.code(0)));
        snapshot.set(key.clone(), stored.map(Record::Session));
        decide_authenticate(
            &world.ctx(),
            &request,
            &world.method_id,
            Some(&extend),
            Some(30),
            &snapshot,
        )
    };
    let decision = decide(Some(session(world.user.value.id.clone(), 60)));
    let plan = decision.answer.expect("extended");
    let (extended, returned_token) = plan.session.expect("the session");
    assert_eq!(returned_token, token);
    assert_eq!(extended.expires_at, NOW.plus_minutes(30));
    assert_eq!(extended.authentication_factors.len(), 1);
    assert!(decision.writes.contains(&Write::PutSession {
        session: extended,
        expect: Expect::Rev(8)
    }));

    assert!(matches!(refused(decide(None)), Error::SessionNotFound));
    assert!(matches!(
        refused(decide(Some(session(world.user.value.id.clone(), 0)))),
        Error::SessionNotFound
    ));
    assert!(matches!(
        refused(decide(Some(session(UserId::generate(&world.random), 60)))),
        Error::SessionUserMismatch
    ));
    let mut snapshot = world.snapshot(Some(&world.user), Some(world.code(0)));
    snapshot.set(key.clone(), None);
    assert!(matches!(
        refused(decide_authenticate(
            &world.ctx(),
            &request,
            &world.method_id,
            Some(&ExtendRef::MissingSession),
            None,
            &snapshot
        )),
        Error::SessionNotFound
    ));
}

#[test]
fn a_test_identifiers_code_is_rechecked_by_the_commit_and_refused_once_it_ends() {
    let world = World::new();
    let identifier = world.user.value.identifier_of(&world.method_id).unwrap();
    let test_id = TestIdentifierId::generate(&world.random, NOW);
    let mut code = world.code(0);
    code.test_identifier = Some(test_id.clone());
    code.hash_context = test_id.to_string();
    code.code_hash = world.hasher.hash(test_id.as_str(), "424242");
    let test_key = Key::TestIdentifier {
        app_id: world.app_id.clone(),
        identifier: identifier.clone(),
    };
    let test = TestIdentifier {
        id: test_id.clone(),
        app_id: world.app_id.clone(),
        identifier: identifier.clone(),
        code_hash: code.code_hash,
        valid_until: NOW.plus_seconds(10),
        created_at: NOW,
    };

    // Not read: assumed valid, and the commit re-checks it.
    let snapshot = world.snapshot(Some(&world.user), Some(code.clone()));
    let decision = world.decide("424242", None, None, &snapshot);
    assert!(decision.answer.is_ok());
    assert!(decision.writes.contains(&Write::TestIdentifierValid {
        app_id: world.app_id.clone(),
        identifier: identifier.clone(),
        id: test_id.clone(),
        now: NOW,
    }));

    // The commit found it gone, ended, or replaced: a wrong code.
    let mut ended = test.clone();
    ended.valid_until = NOW;
    let mut replaced = test.clone();
    replaced.id = TestIdentifierId::generate(&world.random, NOW);
    for current in [None, Some(ended), Some(replaced)] {
        let mut snapshot = world.snapshot(Some(&world.user), Some(code.clone()));
        snapshot.set(test_key.clone(), current.map(Record::TestIdentifier));
        let decision = world.decide("424242", None, None, &snapshot);
        assert!(matches!(
            decision.answer,
            Err(Error::OtpCodeNotFound { .. })
        ));
        assert_eq!(decision.writes.len(), 2, "counted as a wrong attempt");
    }
    let mut snapshot = world.snapshot(Some(&world.user), Some(code));
    snapshot.set(test_key, Some(Record::TestIdentifier(test)));
    assert!(world.decide("424242", None, None, &snapshot).answer.is_ok());
}
