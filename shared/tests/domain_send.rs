//! Who a code goes to: login_or_create, send, send to a target user, pending users, identifiers
//! unique per app, SMS countries, and deleting a user.

#[path = "domain_harness.rs"]
mod harness;

use harness::{EMAIL, Harness, OTHER_PHONE, PHONE, config_input, login_or_create, request};
use shared::Error;
use shared::model::{Channel, UserStatus};
use shared::ports::{Key, LoginStore, Record};
use shared::service::management::{self, SmsCountriesInput};
use shared::service::otp::{self, SendMode, SendTarget};
use shared::service::{sessions, users};

fn send_mode(target: Option<SendTarget>) -> SendMode {
    SendMode::Send { target }
}

#[tokio::test]
async fn login_or_create_creates_the_user_once() {
    let h = Harness::new(200).await;
    let (first, _) = h.send_code(PHONE).await;
    assert!(first.user_created);
    assert!(first.method_id.as_str().starts_with("phone-number-"));
    assert!(first.user_id.as_str().starts_with("user-"));
    let user = users::get(h.deps(), &h.app.id, first.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(user.phone_numbers.len(), 1);
    assert_eq!(user.phone_numbers[0].phone_number.as_str(), PHONE);
    assert!(
        !user.phone_numbers[0].verified,
        "not verified before a code is used"
    );

    h.cooldown();
    let (second, _) = h.send_code(PHONE).await;
    assert!(!second.user_created);
    assert_eq!(second.user_id, first.user_id);
    assert_eq!(second.method_id, first.method_id);
    // The same number written differently is the same identifier.
    h.cooldown();
    let third = h
        .send(login_or_create("+1 (202) 555-0100"))
        .await
        .expect("send");
    assert!(!third.user_created);
    assert_eq!(third.user_id, first.user_id);
}

#[tokio::test]
async fn emails_are_matched_case_insensitively() {
    let h = Harness::new(201).await;
    let first = h
        .send(login_or_create("Ann@Example.COM"))
        .await
        .expect("send");
    assert!(first.user_created);
    assert!(first.method_id.as_str().starts_with("email-"));
    let code = h.last_code(EMAIL);
    h.cooldown();
    let second = h.send(login_or_create(EMAIL)).await.expect("send");
    assert!(!second.user_created);
    assert_eq!(second.user_id, first.user_id);
    let fresh = h.last_code(EMAIL);
    assert_ne!(code, fresh);
    h.auth(&second.method_id, &fresh)
        .await
        .expect("authenticate");
}

#[tokio::test]
async fn send_to_an_unknown_identifier_is_not_found() {
    let h = Harness::new(202).await;
    let result = h.send(request(PHONE, send_mode(None))).await;
    assert!(
        matches!(result, Err(Error::PhoneNumberNotFound)),
        "{result:?}"
    );
    let result = h.send(request(EMAIL, send_mode(None))).await;
    assert!(matches!(result, Err(Error::EmailNotFound)), "{result:?}");
    assert_eq!(h.outbox_len(), 0, "nothing was sent");
    let (created, _) = h.send_code(PHONE).await;
    assert!(created.user_created, "send created no user");

    // Once the identifier is a user's, send sends to it.
    h.cooldown();
    let sent = h.send(request(PHONE, send_mode(None))).await.expect("send");
    assert_eq!(sent.user_id, created.user_id);
    assert!(!sent.user_created);
    let code = h.last_code(PHONE);
    h.auth(&sent.method_id, &code).await.expect("authenticate");
}

#[tokio::test]
async fn send_with_a_target_user_adds_the_identifier_to_that_user() {
    let h = Harness::new(203).await;
    let (owner, code) = h.send_code(PHONE).await;
    let target = SendTarget::UserId(owner.user_id.as_str().to_owned());
    let added = h
        .send(request(OTHER_PHONE, send_mode(Some(target.clone()))))
        .await
        .expect("send");
    assert_eq!(added.user_id, owner.user_id);
    assert_ne!(added.method_id, owner.method_id);
    assert!(!added.user_created);
    let user = users::get(h.deps(), &h.app.id, owner.user_id.as_str())
        .await
        .expect("user");
    let numbers: Vec<&str> = user
        .phone_numbers
        .iter()
        .map(|p| p.phone_number.as_str())
        .collect();
    assert_eq!(numbers, vec![PHONE, OTHER_PHONE]);

    let new_code = h.last_code(OTHER_PHONE);
    let outcome = h
        .auth(&added.method_id, &new_code)
        .await
        .expect("the added number's code works");
    let verified: Vec<bool> = outcome
        .user
        .phone_numbers
        .iter()
        .map(|p| p.verified)
        .collect();
    assert_eq!(
        verified,
        vec![false, true],
        "only the added number is verified"
    );
    // The first number's code is its own and still live.
    h.auth(&owner.method_id, &code)
        .await
        .expect("the first number's code is untouched");

    // Sending to a number the target already has is a plain send.
    h.cooldown();
    let again = h
        .send(request(OTHER_PHONE, send_mode(Some(target))))
        .await
        .expect("send");
    assert_eq!(again.method_id, added.method_id);
}

#[tokio::test]
async fn send_with_a_session_token_adds_the_identifier_to_its_user() {
    let h = Harness::new(204).await;
    let (owner, code) = h.send_code(PHONE).await;
    let token = h
        .auth_with(&owner.method_id, &code, Some(60))
        .await
        .expect("authenticate")
        .session
        .expect("session")
        .token;
    let added = h
        .send(request(
            EMAIL,
            send_mode(Some(SendTarget::SessionToken(token))),
        ))
        .await
        .expect("send");
    assert_eq!(added.user_id, owner.user_id);
    assert!(added.method_id.as_str().starts_with("email-"));

    let result = h
        .send(request(
            OTHER_PHONE,
            send_mode(Some(SendTarget::SessionToken("not-a-token".to_owned()))),
        ))
        .await;
    assert!(matches!(result, Err(Error::SessionNotFound)), "{result:?}");
}

#[tokio::test]
async fn send_with_a_session_jwt_adds_the_identifier_to_its_user() {
    let h = Harness::new(214).await;
    let (owner, code) = h.send_code(PHONE).await;
    let session = h
        .auth_with(&owner.method_id, &code, Some(60))
        .await
        .expect("authenticate")
        .session
        .expect("session");
    let added = h
        .send(request(
            EMAIL,
            send_mode(Some(SendTarget::SessionJwt(session.jwt.clone()))),
        ))
        .await
        .expect("send");
    assert_eq!(added.user_id, owner.user_id);
    assert_eq!(
        added.method_id.home(),
        owner.user_id.home(),
        "a user's methods live in its home"
    );
    sessions::revoke(
        h.deps(),
        &*h.app_data().await,
        &h.request_id(),
        Some(session.session.id.as_str()),
        None,
        None,
    )
    .await
    .expect("revoke");
    let result = h
        .send(request(
            OTHER_PHONE,
            send_mode(Some(SendTarget::SessionJwt(session.jwt))),
        ))
        .await;
    assert!(
        matches!(result, Err(Error::SessionNotFound)),
        "the JWT of a revoked session: {result:?}"
    );
}

#[tokio::test]
async fn send_with_a_target_for_another_users_identifier_is_a_duplicate() {
    let h = Harness::new(205).await;
    let (alice, _) = h.send_code(PHONE).await;
    let (bob, _) = h.send_code(OTHER_PHONE).await;
    let (carol, _) = h.send_code(EMAIL).await;
    let sent_before = h.outbox_len();

    let to_bob = || Some(SendTarget::UserId(bob.user_id.as_str().to_owned()));
    let result = h.send(request(PHONE, send_mode(to_bob()))).await;
    assert!(
        matches!(result, Err(Error::DuplicatePhoneNumber)),
        "{result:?}"
    );
    let result = h.send(request(EMAIL, send_mode(to_bob()))).await;
    assert!(matches!(result, Err(Error::DuplicateEmail)), "{result:?}");
    assert_eq!(h.outbox_len(), sent_before, "nothing was sent");

    let bob_now = users::get(h.deps(), &h.app.id, bob.user_id.as_str())
        .await
        .expect("bob");
    assert_eq!(bob_now.phone_numbers.len(), 1);
    assert!(bob_now.emails.is_empty());
    h.cooldown();
    for (owner, to) in [(&alice, PHONE), (&carol, EMAIL)] {
        let found = h.send(login_or_create(to)).await.expect("send");
        assert_eq!(
            found.user_id, owner.user_id,
            "{to} still belongs to its owner"
        );
    }

    for target in ["user-00000000-0000-4000-8000-000000000000", "nobody"] {
        let result = h
            .send(request(
                "+12025550123",
                send_mode(Some(SendTarget::UserId(target.to_owned()))),
            ))
            .await;
        assert!(matches!(result, Err(Error::UserNotFound)), "{result:?}");
    }
}

#[tokio::test]
async fn a_pending_user_becomes_active_on_its_first_login() {
    let h = Harness::new(206).await;
    let sent = h
        .send(request(
            PHONE,
            SendMode::LoginOrCreate {
                create_user_as_pending: true,
            },
        ))
        .await
        .expect("send");
    assert!(sent.user_created);
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(user.status, UserStatus::Pending);
    assert!(!user.phone_numbers[0].verified);

    let code = h.last_code(PHONE);
    h.expect_wrong(&sent.method_id, &code, 4).await;
    let user = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(
        user.status,
        UserStatus::Pending,
        "a wrong code activates nothing"
    );

    let outcome = h.auth(&sent.method_id, &code).await.expect("authenticate");
    assert_eq!(outcome.user.status, UserStatus::Active);
    assert!(outcome.user.phone_numbers[0].verified);
    let stored = users::get(h.deps(), &h.app.id, sent.user_id.as_str())
        .await
        .expect("user");
    assert_eq!(stored, outcome.user, "the change is stored");
    assert_eq!(stored.failed_attempts, 0);
}

#[tokio::test]
async fn identifiers_are_unique_per_app_not_per_deployment() {
    let h = Harness::new(207).await;
    let second_app = management::create_app(h.deps(), "Second app")
        .await
        .expect("create_app")
        .app;
    management::create_config(
        h.deps(),
        second_app.id.as_str(),
        config_input(Channel::Sms, true),
    )
    .await
    .expect("create_config");

    let (here, code) = h.send_code(PHONE).await;
    let second = h.app_data_of(&second_app).await;
    let there = otp::send_code(h.deps(), &second, &h.request_id(), login_or_create(PHONE))
        .await
        .expect("send in the second app");
    assert!(here.user_created && there.user_created);
    assert_ne!(here.user_id, there.user_id);
    assert_ne!(here.method_id, there.method_id);
    let there_code = h.last_code(PHONE);

    // Each app's method answers only in that app.
    let result = otp::authenticate(
        h.deps(),
        &second,
        &h.request_id(),
        otp::AuthenticateRequest {
            method_id: here.method_id.as_str().to_owned(),
            code: code.clone(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(result, Err(Error::OtpCodeNotFound { .. })),
        "{result:?}"
    );
    h.auth(&here.method_id, &code).await.expect("first app");
    let outcome = otp::authenticate(
        h.deps(),
        &second,
        &h.request_id(),
        otp::AuthenticateRequest {
            method_id: there.method_id.as_str().to_owned(),
            code: there_code,
            ..Default::default()
        },
    )
    .await
    .expect("second app");
    assert_eq!(outcome.user.id, there.user_id);
}

#[tokio::test]
async fn sms_countries_limit_where_codes_go() {
    let h = Harness::new(208).await;
    let app_id = h.app.id.as_str();
    management::put_sms_countries(
        h.deps(),
        app_id,
        SmsCountriesInput::CallingCodes(Some(vec!["+44".to_owned()])),
    )
    .await
    .expect("put_sms_countries");
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::InvalidPhoneNumberCountryCode)),
        "{result:?}"
    );
    assert_eq!(h.outbox_len(), 0);
    h.send_code("+447400123456").await;
    h.send_code(EMAIL).await;

    management::put_sms_countries(
        h.deps(),
        app_id,
        SmsCountriesInput::Regions(Some(Vec::new())),
    )
    .await
    .expect("put_sms_countries");
    h.send_code(PHONE).await;
}

#[tokio::test]
async fn a_deleted_user_keeps_nothing_usable() {
    let h = Harness::new(209).await;
    let (sent, code) = h.send_code(PHONE).await;
    let token = h
        .auth_with(&sent.method_id, &code, Some(60))
        .await
        .expect("authenticate")
        .session
        .expect("session")
        .token;
    h.cooldown();
    let (_, pending_code) = h.send_code(PHONE).await;

    users::delete(h.deps(), &h.app.id, &h.request_id(), sent.user_id.as_str())
        .await
        .expect("delete");
    let result = users::get(h.deps(), &h.app.id, sent.user_id.as_str()).await;
    assert!(matches!(result, Err(Error::UserNotFound)), "{result:?}");
    let result = h.auth(&sent.method_id, &pending_code).await;
    assert!(
        matches!(result, Err(Error::OtpCodeNotFound { .. })),
        "{result:?}"
    );
    let result = sessions::authenticate(
        h.deps(),
        &*h.app_data().await,
        &h.request_id(),
        Some(&token),
        None,
        None,
        None,
    )
    .await;
    assert!(matches!(result, Err(Error::SessionNotFound)), "{result:?}");
    assert!(
        !h.mem
            .store
            .dump_for_inspection()
            .contains(sent.method_id.as_str()),
        "no record of the user's method is left"
    );

    h.cooldown();
    let again = h.send(login_or_create(PHONE)).await.expect("send");
    assert!(again.user_created, "the number is free again");
    assert_ne!(again.user_id, sent.user_id);
}

/// An SMS sender that refuses everything, keeping the codes it was handed.
#[derive(Default)]
struct RefusingSms(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl shared::ports::SmsSender for RefusingSms {
    async fn send_sms(
        &self,
        message: &shared::ports::SmsMessage,
    ) -> Result<(), shared::ports::DeliveryError> {
        self.0.lock().expect("lock").push(message.code.0.clone());
        Err(shared::ports::DeliveryError("refused".to_owned()))
    }
}

#[tokio::test]
async fn a_failed_delivery_leaves_no_usable_code_and_can_be_retried_at_once() {
    let mut h = Harness::new(210).await;
    let refusing = std::sync::Arc::new(RefusingSms::default());
    h.mem.deps.sms = refusing.clone();
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::SmsDeliveryFailed)),
        "{result:?}"
    );
    let undelivered = refusing.0.lock().expect("lock")[0].clone();
    assert_eq!(h.outbox_len(), 0);

    h.mem.deps.sms = h.mem.outbox.clone();
    let sent = h
        .send(login_or_create(PHONE))
        .await
        .expect("the retry is not rate limited: the failed send used up nothing");
    let code = h.last_code(PHONE);
    if undelivered != code {
        let result = h.auth(&sent.method_id, &undelivered).await;
        assert!(
            matches!(result, Err(Error::OtpCodeNotFound { .. })),
            "the undelivered code is not usable: {result:?}"
        );
    }
    h.auth(&sent.method_id, &code)
        .await
        .expect("the delivered code works");
}

#[tokio::test]
async fn a_resend_whose_delivery_fails_leaves_the_earlier_code_valid() {
    let mut h = Harness::new(212).await;
    let (sent, first) = h.send_code(PHONE).await;
    h.cooldown();
    h.mem.deps.sms = std::sync::Arc::new(RefusingSms::default());
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::SmsDeliveryFailed)),
        "{result:?}"
    );
    h.mem.deps.sms = h.mem.outbox.clone();
    h.auth(&sent.method_id, &first)
        .await
        .expect("the code the user received still works");
}

#[tokio::test]
async fn a_failed_first_delivery_makes_no_user() {
    let mut h = Harness::new(213).await;
    h.mem.deps.sms = std::sync::Arc::new(RefusingSms::default());
    assert!(h.send(login_or_create(PHONE)).await.is_err());
    h.mem.deps.sms = h.mem.outbox.clone();
    let result = h.send(request(PHONE, send_mode(None))).await;
    assert!(
        matches!(result, Err(Error::PhoneNumberNotFound)),
        "no user holds the number: {result:?}"
    );
    let sent = h
        .send(login_or_create(PHONE))
        .await
        .expect("login_or_create");
    assert!(sent.user_created, "as if the failed send had never been");
}

#[tokio::test]
async fn a_failed_delivery_does_not_shorten_the_cooldown_of_the_next_send() {
    let mut h = Harness::new(211).await;
    h.mem.deps.sms = std::sync::Arc::new(RefusingSms::default());
    assert!(h.send(login_or_create(PHONE)).await.is_err());
    h.mem.deps.sms = h.mem.outbox.clone();
    h.clock.advance_seconds(20);
    h.send(login_or_create(PHONE)).await.expect("retry");
    h.clock.advance_seconds(10);
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::TooManyRequests { .. })),
        "a second code 10 seconds after the first under a 30-second cooldown: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_login_or_create_makes_one_user() {
    const TASKS: usize = 20;
    let h = std::sync::Arc::new(Harness::new(212).await);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (h, barrier) = (h.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                h.send(login_or_create(PHONE)).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let sent: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(sent.len(), 1, "one code per identifier per 30 seconds");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::TooManyRequests { .. }))),
        "the others are rate limited: {results:?}"
    );
    let owner_key = Key::Owner {
        app_id: h.app.id.clone(),
        identifier: harness::identifier(PHONE),
    };
    let Some(Some(Record::Owner(owner))) = h
        .mem
        .store
        .load(std::slice::from_ref(&owner_key))
        .await
        .expect("load")
        .pop()
    else {
        panic!("the user exists")
    };
    let (user_id, method_id) = (owner.value.user_id, owner.value.method_id);
    assert_eq!(
        sent[0].user_id, user_id,
        "every request resolved to one user"
    );
    assert_eq!(sent[0].method_id, method_id);
    assert_eq!(h.outbox_len(), 1);
    let code = h.last_code(PHONE);
    h.auth(&method_id, &code).await.expect("the code works");
}
