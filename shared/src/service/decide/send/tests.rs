//! Every rule of a send, decided on hand-made records: no store, no clock, no I/O.

use super::*;
use crate::identifiers::{EmailAddress, PhoneNumber, Region};
use crate::ids::{SecretId, TestIdentifierId};
use crate::model::{App, Lock};
use crate::ports::Record;
use crate::random::SeededRandom;
use crate::service::SendLimits;
use crate::service::commit::Need;

const NOW: Timestamp = Timestamp(1_800_000_000);
const PHONE: &str = "+12025550100";

struct World {
    app: AppData,
    limits: Limits,
    hasher: CodeHasher,
    random: SeededRandom,
}

impl World {
    fn new() -> Self {
        let random = SeededRandom::new(5);
        let app_id = AppId::generate(&random);
        let config = |channel, is_default| LoginConfig {
            id: ConfigId::generate(&random, NOW),
            app_id: app_id.clone(),
            channel,
            is_default,
            template_id: None,
            sender_id: None,
            webotp_domain: None,
            android_app_hash: None,
            grant_change_password: false,
            code_length: 6,
            expiration_minutes: 2,
            created_at: NOW,
            updated_at: NOW,
        };
        let configs = vec![config(Channel::Sms, true), config(Channel::Email, true)];
        World {
            app: AppData {
                app: App {
                    id: app_id.clone(),
                    name: "Acme".into(),
                    created_at: NOW,
                },
                secrets: vec![crate::model::AppSecret {
                    id: SecretId::generate(&random, NOW),
                    app_id,
                    hash: [0; 32],
                    created_at: NOW,
                    last_used_at: None,
                }],
                configs,
                templates: Vec::new(),
                sms_countries: None,
                sms_budgets: None,
                signing_keys: Vec::new(),
                frontend: Default::default(),
            },
            limits: Limits {
                send: SendLimits {
                    cooldown_seconds: 30,
                    window_max: 3,
                    window_seconds: 600,
                    ip_window_max: 2,
                },
                ..Limits::default()
            },
            hasher: CodeHasher::new(&[7; 32]).unwrap(),
            random,
        }
    }

    fn app_id(&self) -> AppId {
        self.app.app.id.clone()
    }

    fn ctx(&self) -> SendContext<'_> {
        SendContext {
            app: &self.app,
            limits: &self.limits,
            code_hasher: &self.hasher,
            random: &self.random,
            default_email_from: "no-reply@example.com",
            now: NOW,
        }
    }

    /// A snapshot as the load would give it for `request`: nothing stored.
    fn empty(&self, request: &SendRequest, target: Option<&TargetRef>) -> Snapshot {
        let keys = keys_to_load(&self.app_id(), request, target, &self.limits, NOW);
        let loaded = vec![None; keys.len()];
        Snapshot::from_loaded(&keys, loaded)
    }

    fn user(&self, identifier: &Identifier) -> (Versioned<User>, Versioned<Owner>) {
        let mut user = User {
            id: UserId::generate(&self.random),
            app_id: self.app_id(),
            status: UserStatus::Active,
            created_at: NOW,
            phone_numbers: Vec::new(),
            emails: Vec::new(),
            failed_attempts: 0,
            lock: None,
        };
        let method_id = new_method_id(&self.random, &user, identifier);
        user.add_method(method_id.clone(), identifier.clone());
        let owner = Owner {
            app_id: self.app_id(),
            identifier: identifier.clone(),
            user_id: user.id.clone(),
            method_id,
            pending_since: None,
        };
        (Versioned::new(user, 3), Versioned::new(owner, 1))
    }

    fn decide(
        &self,
        request: &SendRequest,
        target: Option<&TargetRef>,
        snapshot: &Snapshot,
    ) -> Decision<SendPlan> {
        decide_send(&self.ctx(), request, target, snapshot)
    }
}

fn phone() -> Identifier {
    Identifier::Phone(PhoneNumber::parse(PHONE).unwrap())
}

fn email() -> Identifier {
    Identifier::Email(EmailAddress::parse("ann@example.com").unwrap())
}

fn login_or_create(identifier: Identifier) -> SendRequest {
    SendRequest {
        identifier,
        mode: SendMode::LoginOrCreate {
            create_user_as_pending: false,
        },
        expiration_minutes: None,
        locale: None,
        login_config_id: None,
        login_template_id: None,
        signup_template_id: None,
        ip_address: None,
        public_sends_per_hour: None,
    }
}

fn refused(decision: Decision<SendPlan>) -> Error {
    assert!(decision.writes.is_empty(), "a refusal writes nothing");
    match decision.answer {
        Err(error) => error,
        Ok(plan) => panic!("expected a refusal, got {:?}", plan.outcome),
    }
}

fn committed(decision: Decision<SendPlan>) -> (Vec<Write>, SendPlan) {
    match decision.answer {
        Ok(plan) => (decision.writes, plan),
        Err(error) => panic!("expected a send, got {error:?}"),
    }
}

fn counter_record(key: String, offsets: &[i64], rev: u64) -> Record {
    Record::Counter(Versioned::new(
        SendCounter {
            key,
            hits: offsets.iter().map(|o| NOW.plus_seconds(*o)).collect(),
        },
        rev,
    ))
}

#[test]
fn a_new_identifier_makes_a_user_its_owner_and_its_first_code_and_counts_the_send() {
    let world = World::new();
    let request = login_or_create(phone());
    let (writes, plan) = committed(world.decide(&request, None, &world.empty(&request, None)));
    assert!(plan.outcome.user_created);
    assert_eq!(plan.outcome.method_id.home(), plan.outcome.user_id.home());
    let kinds: Vec<&str> = writes.iter().map(kind).collect();
    // The identifier's counter, then the SMS budgets (app, region and prefix, hour and day).
    assert_eq!(
        kinds,
        [
            "PutCounter",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "PutOwner",
            "PutCodes",
            "PutUser"
        ]
    );
    for write in &writes {
        match write {
            Write::PutOwner { expect, .. }
            | Write::PutCodes { expect, .. }
            | Write::PutUser { expect, .. }
            | Write::PutCounter { expect, .. } => assert_eq!(*expect, Expect::Absent),
            Write::Tally { add: 1, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let Some(Write::PutCodes { codes, .. }) = writes.iter().find(|w| kind(w) == "PutCodes") else {
        panic!("no code")
    };
    let challenge = codes.current.as_ref().unwrap();
    assert_eq!(challenge.expires_at, NOW.plus_minutes(2));
    let Outgoing::Sms(sms) = &plan.message else {
        panic!("an SMS")
    };
    assert!(
        world
            .hasher
            .matches(&challenge.hash_context, &sms.code.0, &challenge.code_hash),
        "the message carries the code whose hash is stored"
    );
    assert!(sms.text.contains(&sms.code.0));
    assert_eq!(
        plan.undo.made,
        Made::User {
            user_id: plan.outcome.user_id.clone(),
            identifier: phone(),
            owner_rev: 1,
        }
    );
}

#[test]
fn a_known_identifier_gets_a_new_code_on_condition_that_its_owner_and_user_are_as_read() {
    let world = World::new();
    let request = login_or_create(phone());
    let (user, owner) = world.user(&phone());
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Owner(owner.clone()));
    let (writes, plan) = committed(world.decide(&request, None, &snapshot));
    assert!(!plan.outcome.user_created);
    assert_eq!(plan.outcome.user_id, user.value.id);
    assert_eq!(plan.outcome.method_id, owner.value.method_id);
    assert!(writes.contains(&Write::Check {
        key: Key::Owner {
            app_id: world.app_id(),
            identifier: phone()
        },
        expect: Expect::Rev(1),
    }));
    assert!(writes.contains(&Write::UserUnlocked {
        app_id: world.app_id(),
        user_id: user.value.id.clone(),
        now: NOW,
    }));
    assert!(writes.iter().any(|w| kind(w) == "ReplaceCode"));
    assert_eq!(plan.undo.made, Made::Code);
}

#[test]
fn refusals_write_nothing() {
    let world = World::new();
    let app_id = world.app_id();
    let (locked_user, owner) = world.user(&phone());
    let mut locked_user = locked_user;
    locked_user.value.lock = Some(Lock {
        created_at: NOW,
        expires_at: NOW.plus_seconds(100),
    });
    type Case = (
        &'static str,
        Box<dyn Fn(&mut SendRequest, &mut World)>,
        Box<dyn Fn(&mut Snapshot)>,
        Error,
    );
    let nothing = || -> Box<dyn Fn(&mut Snapshot)> { Box::new(|_| {}) };
    let owner_record = Record::Owner(owner.clone());
    let locked_record = Record::User(locked_user.clone());
    let cases: Vec<Case> = vec![
        (
            "expiration_minutes out of range",
            Box::new(|r, _| r.expiration_minutes = Some(11)),
            nothing(),
            Error::InvalidExpirationMinutes,
        ),
        (
            "a country outside the app's list",
            Box::new(|_, w| w.app.sms_countries = Some(vec![region("GB"), region("CA")])),
            nothing(),
            Error::InvalidPhoneNumberCountryCode,
        ),
        (
            "no default config for the channel",
            Box::new(|_, w| w.app.configs.retain(|c| c.channel != Channel::Sms)),
            nothing(),
            Error::NoLoginConfig(Channel::Sms),
        ),
        (
            "a default only for the other channel",
            Box::new(|_, w| {
                for c in &mut w.app.configs {
                    if c.channel == Channel::Sms {
                        c.is_default = false;
                    }
                }
            }),
            nothing(),
            Error::NoLoginConfig(Channel::Sms),
        ),
        (
            "a login_config_id of another channel",
            Box::new(|r, w| {
                let email_config = w
                    .app
                    .configs
                    .iter()
                    .find(|c| c.channel == Channel::Email)
                    .unwrap();
                r.login_config_id = Some(email_config.id.to_string());
            }),
            nothing(),
            Error::LoginConfigNotFound(String::new()),
        ),
        (
            "a malformed login_config_id",
            Box::new(|r, _| r.login_config_id = Some("lcfg_nope".into())),
            nothing(),
            Error::LoginConfigNotFound(String::new()),
        ),
        (
            "send to an identifier nobody has",
            Box::new(|r, _| r.mode = SendMode::Send { target: None }),
            nothing(),
            Error::PhoneNumberNotFound,
        ),
        (
            "a locked user (seen after a failed commit)",
            Box::new(|_, _| {}),
            {
                let (o, u) = (owner_record.clone(), locked_record.clone());
                Box::new(move |s| {
                    s.put(o.clone());
                    s.put(u.clone());
                })
            },
            Error::UserLockLimitReached {
                retry_after_seconds: 100,
            },
        ),
        (
            "the cooldown",
            Box::new(|_, _| {}),
            {
                let key = format!("send#{app_id}#{PHONE}");
                Box::new(move |s| s.put(counter_record(key.clone(), &[-10], 1)))
            },
            Error::TooManyRequests {
                retry_after_seconds: 20,
            },
        ),
        (
            "the identifier's window",
            Box::new(|_, _| {}),
            {
                let key = format!("send#{app_id}#{PHONE}");
                Box::new(move |s| s.put(counter_record(key.clone(), &[-500, -400, -300], 1)))
            },
            Error::TooManyRequests {
                retry_after_seconds: 100,
            },
        ),
        (
            "the IP window",
            Box::new(|r, _| r.ip_address = Some("203.0.113.9".into())),
            {
                let key = format!("ip#{app_id}#203.0.113.9");
                Box::new(move |s| s.put(counter_record(key.clone(), &[-100, -50], 4)))
            },
            Error::TooManyRequests {
                retry_after_seconds: 500,
            },
        ),
    ];
    for (name, setup, stored, expected) in cases {
        let mut world = World::new();
        world.app.app.id = app_id.clone();
        for c in &mut world.app.configs {
            c.app_id = app_id.clone();
        }
        let mut request = login_or_create(phone());
        setup(&mut request, &mut world);
        let mut snapshot = world.empty(&request, None);
        stored(&mut snapshot);
        let error = refused(world.decide(&request, None, &snapshot));
        assert_eq!(
            std::mem::discriminant(&error),
            std::mem::discriminant(&expected),
            "{name}: {error:?}"
        );
        match (&error, &expected) {
            (
                Error::TooManyRequests {
                    retry_after_seconds: a,
                },
                Error::TooManyRequests {
                    retry_after_seconds: b,
                },
            )
            | (
                Error::UserLockLimitReached {
                    retry_after_seconds: a,
                },
                Error::UserLockLimitReached {
                    retry_after_seconds: b,
                },
            ) => assert_eq!(a, b, "{name}"),
            _ => {}
        }
    }
}

#[test]
fn a_known_user_over_the_limit_is_checked_for_a_lock_before_being_told_to_wait() {
    let world = World::new();
    let request = login_or_create(phone());
    let (mut user, owner) = world.user(&phone());
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Owner(owner.clone()));
    snapshot.put(counter_record(
        format!("send#{}#{PHONE}", world.app_id()),
        &[-10],
        1,
    ));
    let decision = world.decide(&request, None, &snapshot);
    assert_eq!(
        decision.writes,
        vec![Write::UserUnlocked {
            app_id: world.app_id(),
            user_id: owner.value.user_id.clone(),
            now: NOW,
        }],
        "a condition only: nothing is written"
    );
    assert!(matches!(
        decision.answer,
        Err(Error::TooManyRequests { .. })
    ));

    // The commit found the user locked: that is the answer.
    user.value.lock = Some(Lock {
        created_at: NOW,
        expires_at: NOW.plus_seconds(3000),
    });
    snapshot.put(Record::User(user.clone()));
    let error = refused(world.decide(&request, None, &snapshot));
    assert!(matches!(
        error,
        Error::UserLockLimitReached {
            retry_after_seconds: 3000
        }
    ));
    // Unlocked (now read): too many requests, without a commit.
    user.value.lock = None;
    snapshot.put(Record::User(user));
    let error = refused(world.decide(&request, None, &snapshot));
    assert!(matches!(error, Error::TooManyRequests { .. }));
}

#[test]
fn an_sms_can_carry_the_lines_that_fill_the_code_in() {
    let mut world = World::new();
    let config = world
        .app
        .configs
        .iter_mut()
        .find(|c| c.channel == Channel::Sms)
        .unwrap();
    config.webotp_domain = Some("login.example.com".into());
    config.android_app_hash = Some("FA+9qCX9VSu".into());
    let request = login_or_create(phone());
    let (_, plan) = committed(world.decide(&request, None, &world.empty(&request, None)));
    let Outgoing::Sms(sms) = &plan.message else {
        panic!("an SMS")
    };
    let lines: Vec<&str> = sms.text.lines().collect();
    let code = &sms.code.0;
    assert_eq!(
        lines.last(),
        Some(&format!("@login.example.com #{code}").as_str())
    );
    assert_eq!(lines[lines.len() - 2], "FA+9qCX9VSu");
    assert!(
        lines[0].contains(code.as_str()),
        "the text itself still says the code"
    );
    // Without them the text is the template's.
    let bare = with_autofill("Your code is 1", &world.app.configs[1], "1");
    assert_eq!(bare, "Your code is 1");
}

#[test]
fn sms_budgets_and_the_verification_floor() {
    let mut world = World::new();
    let request = login_or_create(phone());
    let budgets = crate::service::decide::budget::sms_budgets(
        &crate::model::SmsBudgets::default(),
        &PhoneNumber::parse(PHONE).unwrap(),
        NOW,
    );
    // A budget the commit found full (its tally came back with the conflict): 429 until its
    // window ends, nothing written.
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Tally(crate::model::Tally {
        app_id: world.app_id(),
        name: budgets[4].name.clone(),
        count: 20,
    }));
    match refused(world.decide(&request, None, &snapshot)) {
        Error::SmsBudgetExhausted {
            retry_after_seconds,
        } => assert_eq!(
            retry_after_seconds,
            (budgets[4].window_end.seconds() - NOW.seconds()) as u64
        ),
        other => panic!("{other:?}"),
    }
    // A region where few codes sent are verified is paused.
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Tally(crate::model::Tally {
        app_id: world.app_id(),
        name: budgets[3].name.clone(),
        count: 150,
    }));
    assert!(matches!(
        refused(world.decide(&request, None, &snapshot)),
        Error::SmsRegionPaused { .. }
    ));
    // The app's own settings: no limits, no floor: only the region's day is counted.
    world.app.sms_budgets = Some(crate::model::SmsBudgets {
        app: crate::model::WindowLimits {
            hour: None,
            day: None,
        },
        region: crate::model::WindowLimits {
            hour: None,
            day: None,
        },
        prefix: crate::model::WindowLimits {
            hour: None,
            day: None,
        },
        prefix_digits: 8,
        verification_floor: None,
    });
    let (writes, plan) = committed(world.decide(&request, None, &snapshot));
    let tallies: Vec<&Write> = writes.iter().filter(|w| kind(w) == "Tally").collect();
    assert_eq!(tallies.len(), 1);
    assert_eq!(plan.undo.budgets.len(), 1);
    // Email is not held to SMS budgets.
    let request = login_or_create(email());
    let (writes, _) = committed(world.decide(&request, None, &world.empty(&request, None)));
    assert!(!writes.iter().any(|w| kind(w) == "Tally"));
}

#[test]
fn an_allowed_country_and_a_named_config_are_used() {
    let mut world = World::new();
    world.app.sms_countries = Some(vec![region("US")]);
    let mut second = world.app.configs[0].clone();
    second.id = ConfigId::generate(&world.random, NOW);
    second.is_default = false;
    second.code_length = 8;
    second.expiration_minutes = 7;
    second.grant_change_password = true;
    world.app.configs.push(second.clone());
    let mut request = login_or_create(phone());
    request.login_config_id = Some(second.id.to_string());
    let (writes, plan) = committed(world.decide(&request, None, &world.empty(&request, None)));
    let Outgoing::Sms(sms) = &plan.message else {
        panic!("an SMS")
    };
    assert_eq!(sms.code.0.len(), 8);
    let Some(Write::PutCodes { codes, .. }) = writes.iter().find(|w| kind(w) == "PutCodes") else {
        panic!("no code")
    };
    let challenge = codes.current.as_ref().unwrap();
    assert_eq!(challenge.config_id, second.id);
    assert!(challenge.grant_change_password);
    assert_eq!(challenge.expires_at, NOW.plus_minutes(7));
    request.expiration_minutes = Some(1);
    let (writes, _) = committed(world.decide(&request, None, &world.empty(&request, None)));
    let Some(Write::PutCodes { codes, .. }) = writes.iter().find(|w| kind(w) == "PutCodes") else {
        panic!("no code")
    };
    assert_eq!(
        codes.current.as_ref().unwrap().expires_at,
        NOW.plus_minutes(1),
        "the request's expiration_minutes overrides the config's"
    );
}

fn region(code: &str) -> Region {
    Region::parse(code).unwrap()
}

#[test]
fn the_sms_countries_are_regions_not_calling_codes() {
    let jamaica = Identifier::Phone(PhoneNumber::parse("+18762101234").unwrap());
    let canada = Identifier::Phone(PhoneNumber::parse("+15062345678").unwrap());
    let isle_of_man = Identifier::Phone(PhoneNumber::parse("+447624123456").unwrap());
    let britain = Identifier::Phone(PhoneNumber::parse("+447400123456").unwrap());
    for (allowed, identifier, admitted) in [
        (vec!["US"], phone(), true),
        (vec!["US"], jamaica.clone(), false),
        (vec!["US"], canada.clone(), false),
        (vec!["US", "CA"], canada, true),
        (vec!["JM"], jamaica.clone(), true),
        (vec!["JM"], phone(), false),
        (vec!["GB"], britain.clone(), true),
        (vec!["GB"], isle_of_man.clone(), false),
        (vec!["IM"], isle_of_man, true),
        (vec![], britain, false),
        // Email is not checked against the SMS countries.
        (vec!["US"], email(), true),
    ] {
        let mut world = World::new();
        world.app.sms_countries = Some(allowed.iter().map(|r| region(r)).collect());
        let request = login_or_create(identifier.clone());
        let decision = world.decide(&request, None, &world.empty(&request, None));
        if admitted {
            committed(decision);
        } else {
            let error = refused(decision);
            assert!(
                matches!(error, Error::InvalidPhoneNumberCountryCode),
                "{allowed:?} {identifier:?}: {error:?}"
            );
        }
    }
    // What a list of calling codes admitted, its regions admit.
    let mut world = World::new();
    world.app.sms_countries = Some(Region::of_calling_codes(&["1"]));
    let request = login_or_create(jamaica);
    committed(world.decide(&request, None, &world.empty(&request, None)));
}

#[test]
fn an_email_counts_on_its_mailbox_and_an_ip_on_its_address_or_its_64() {
    let app_id = AppId::generate(&SeededRandom::new(7));
    let limits = Limits::default();
    let email = |text: &str| Identifier::Email(EmailAddress::parse(text).unwrap());
    for (identifier, ip, keys) in [
        (phone(), None, vec![format!("send#{app_id}#{PHONE}")]),
        (
            email("ann@example.com"),
            None,
            vec![format!("send#{app_id}#ann@example.com")],
        ),
        (
            email("Ann+News@Example.com"),
            Some(" 203.0.113.9 "),
            vec![
                format!("send#{app_id}#ann@example.com"),
                format!("ip#{app_id}#203.0.113.9"),
            ],
        ),
        (
            email("\"ann+x\"@example.com"),
            Some("::ffff:203.0.113.9"),
            vec![
                format!("send#{app_id}#ann@example.com"),
                format!("ip#{app_id}#203.0.113.9"),
            ],
        ),
        (
            phone(),
            Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            vec![
                format!("send#{app_id}#{PHONE}"),
                format!("ip#{app_id}#2001:db8:1:2::/64"),
            ],
        ),
        (phone(), Some(""), vec![format!("send#{app_id}#{PHONE}")]),
    ] {
        let rules = counter_rules(&app_id, &identifier, ip, &limits);
        let got: Vec<String> = rules.into_iter().map(|r| r.key).collect();
        assert_eq!(got, keys, "{identifier:?} {ip:?}");
    }
}

#[test]
fn a_test_identifier_uses_its_fixed_code_and_no_send_limit() {
    let world = World::new();
    let request = login_or_create(phone());
    let test_id = TestIdentifierId::generate(&world.random, NOW);
    let test = TestIdentifier {
        id: test_id.clone(),
        app_id: world.app_id(),
        identifier: phone(),
        code_hash: world.hasher.hash(test_id.as_str(), "123456"),
        valid_until: NOW.plus_seconds(60),
        created_at: NOW,
    };
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::TestIdentifier(test.clone()));
    // A full counter does not stop a test identifier.
    snapshot.put(counter_record(
        format!("send#{}#{PHONE}", world.app_id()),
        &[-1],
        9,
    ));
    let (writes, plan) = committed(world.decide(&request, None, &snapshot));
    assert!(plan.test);
    assert!(!writes.iter().any(|w| kind(w) == "PutCounter"));
    assert!(
        !writes.iter().any(|w| kind(w) == "Tally"),
        "no SMS budget either"
    );
    assert!(plan.undo.counters.is_empty());
    let Some(Write::PutCodes { codes, .. }) = writes.iter().find(|w| kind(w) == "PutCodes") else {
        panic!("no code")
    };
    let challenge = codes.current.as_ref().unwrap();
    assert_eq!(challenge.test_identifier, Some(test_id.clone()));
    assert!(
        world
            .hasher
            .matches(&challenge.hash_context, "123456", &challenge.code_hash)
    );

    // Past valid_until it is an ordinary identifier again: counted, and limited.
    let mut expired = test;
    expired.valid_until = NOW;
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::TestIdentifier(expired));
    snapshot.put(counter_record(
        format!("send#{}#{PHONE}", world.app_id()),
        &[-1],
        9,
    ));
    assert!(matches!(
        refused(world.decide(&request, None, &snapshot)),
        Error::TooManyRequests { .. }
    ));
}

#[test]
fn send_with_a_target_adds_the_identifier_or_refuses_another_users() {
    let world = World::new();
    let (target, _) = world.user(&email());
    let target_ref = TargetRef::User(target.value.id.clone());
    let mut request = login_or_create(phone());
    request.mode = SendMode::Send {
        target: Some(SendTarget::UserId(target.value.id.to_string())),
    };
    let mut snapshot = world.empty(&request, Some(&target_ref));
    snapshot.put(Record::User(target.clone()));
    let (writes, plan) = committed(world.decide(&request, Some(&target_ref), &snapshot));
    assert_eq!(plan.outcome.user_id, target.value.id);
    assert_eq!(plan.outcome.method_id.home(), target.value.id.home());
    let Some(Write::PutUser { user, expect }) = writes.iter().find(|w| kind(w) == "PutUser") else {
        panic!("the user gains the method")
    };
    assert_eq!(*expect, Expect::Rev(3));
    assert_eq!(user.phone_numbers.len(), 1);
    assert!(!user.phone_numbers[0].verified);
    assert!(matches!(plan.undo.made, Made::Method { rev: 4, .. }));

    // The identifier is someone else's.
    let (_, other_owner) = world.user(&phone());
    snapshot.put(Record::Owner(other_owner));
    assert!(matches!(
        refused(world.decide(&request, Some(&target_ref), &snapshot)),
        Error::DuplicatePhoneNumber
    ));

    // The target does not exist.
    let snapshot = world.empty(&request, Some(&target_ref));
    assert!(matches!(
        refused(world.decide(&request, Some(&target_ref), &snapshot)),
        Error::UserNotFound
    ));
    // A JWT that named no session.
    assert!(matches!(
        refused(world.decide(&request, Some(&TargetRef::MissingSession), &snapshot)),
        Error::SessionNotFound
    ));
}

#[test]
fn an_identifier_attached_but_unverified_routes_no_login_to_its_user() {
    let world = World::new();
    // The attacker's user holds the victim's number, attached by a send and never verified.
    let (attacker, mut attached) = world.user(&phone());
    attached.value.pending_since = Some(NOW.plus_seconds(-60));
    attached.rev = 2;
    let request = login_or_create(phone());
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Owner(attached.clone()));
    let decision = world.decide(&request, None, &snapshot);
    let attacker_key = Key::User {
        app_id: world.app_id(),
        home: attacker.value.id.home(),
    };
    assert_eq!(
        decision.need,
        Some(Need::Keys(vec![attacker_key])),
        "the user it is taken from is read first"
    );
    snapshot.put(Record::User(attacker.clone()));
    let (writes, plan) = committed(world.decide(&request, None, &snapshot));
    assert!(
        plan.outcome.user_created,
        "the victim gets a user of their own"
    );
    assert_ne!(plan.outcome.user_id, attacker.value.id);
    assert!(writes.contains(&Write::DeleteCodes {
        app_id: world.app_id(),
        method_id: attached.value.method_id.clone(),
        expect: Expect::Any,
    }));
    let Some(Write::PutUser { user, expect }) = writes
        .iter()
        .find(|w| matches!(w, Write::PutUser { user, .. } if user.id == attacker.value.id))
    else {
        panic!("the method leaves the attacker's user: {writes:?}")
    };
    assert_eq!(*expect, Expect::Rev(3));
    assert!(user.phone_numbers.is_empty());
    let Some(Write::PutOwner { owner, expect }) =
        writes.iter().find(|w| matches!(w, Write::PutOwner { .. }))
    else {
        panic!("the owner record changes hands: {writes:?}")
    };
    assert_eq!(*expect, Expect::Rev(2));
    assert_eq!(owner.user_id, plan.outcome.user_id);
    assert_eq!(
        owner.pending_since, None,
        "a login's own identifier is not pending"
    );
    assert!(matches!(plan.undo.made, Made::User { owner_rev: 3, .. }));

    // A send to it without a target finds nobody; to another target, it is taken until it
    // is abandoned.
    let mut send = request.clone();
    send.mode = SendMode::Send { target: None };
    assert!(matches!(
        refused(world.decide(&send, None, &snapshot)),
        Error::PhoneNumberNotFound
    ));
    let (other, _) = world.user(&email());
    let target = TargetRef::User(other.value.id.clone());
    send.mode = SendMode::Send {
        target: Some(SendTarget::UserId(other.value.id.to_string())),
    };
    snapshot.put(Record::User(other.clone()));
    assert!(matches!(
        refused(world.decide(&send, Some(&target), &snapshot)),
        Error::DuplicatePhoneNumber
    ));
    attached.value.pending_since = Some(NOW.plus_seconds(-crate::model::PENDING_ATTACH_SECONDS));
    snapshot.put(Record::Owner(attached.clone()));
    let (writes, plan) = committed(world.decide(&send, Some(&target), &snapshot));
    assert_eq!(
        plan.outcome.user_id, other.value.id,
        "an abandoned attachment is free"
    );
    let Some(Write::PutOwner { owner, .. }) =
        writes.iter().find(|w| matches!(w, Write::PutOwner { .. }))
    else {
        panic!("{writes:?}")
    };
    assert_eq!(
        owner.pending_since,
        Some(NOW),
        "attached: pending until verified"
    );
    // The attacker's own resend (to finish verifying) still reaches them.
    send.mode = SendMode::Send {
        target: Some(SendTarget::UserId(attacker.value.id.to_string())),
    };
    let target = TargetRef::User(attacker.value.id.clone());
    let (_, plan) = committed(world.decide(&send, Some(&target), &snapshot));
    assert_eq!(plan.outcome.method_id, attached.value.method_id);
}

#[test]
fn the_signup_template_is_for_new_users_and_the_login_template_for_known_ones() {
    let mut world = World::new();
    let template = |subject: &str| Template {
        id: TemplateId::generate(&world.random, NOW),
        app_id: world.app_id(),
        channel: Channel::Email,
        locale: "en".into(),
        subject: Some(subject.into()),
        text: "code {{code}}".into(),
        html: None,
        created_at: NOW,
        updated_at: NOW,
    };
    let signup = template("Welcome");
    let login = template("Welcome back");
    world.app.templates = vec![signup.clone(), login.clone()];
    let mut request = login_or_create(email());
    request.signup_template_id = Some(signup.id.to_string());
    request.login_template_id = Some(login.id.to_string());
    let subject = |plan: &SendPlan| match &plan.message {
        Outgoing::Email(mail) => mail.subject.clone(),
        Outgoing::Sms(_) => panic!("an email"),
    };
    let (_, plan) = committed(world.decide(&request, None, &world.empty(&request, None)));
    assert_eq!(subject(&plan), "Welcome");
    let (_, owner) = world.user(&email());
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Owner(owner));
    let (_, plan) = committed(world.decide(&request, None, &snapshot));
    assert_eq!(subject(&plan), "Welcome back");
    request.login_template_id = Some(TemplateId::generate(&world.random, NOW).to_string());
    assert!(matches!(
        refused(world.decide(&request, None, &world.empty(&request, None))),
        Error::TemplateNotFound(_)
    ));
}

/// The codes of the method the plan sent to, as a record: `current` and `previous`.
fn codes_record(
    plan: &SendPlan,
    current: Option<&Challenge>,
    previous: &[&Challenge],
    rev: u64,
) -> Record {
    Record::Codes(Versioned::new(
        Codes {
            app_id: plan.undo.app_id.clone(),
            method_id: plan.undo.method_id.clone(),
            current: current.cloned(),
            previous: previous.iter().map(|c| (*c).clone()).collect(),
        },
        rev,
    ))
}

fn sent_code(writes: &[Write]) -> Challenge {
    writes
        .iter()
        .find_map(|w| match w {
            Write::PutCodes { codes, .. } => codes.current.clone(),
            Write::ReplaceCode { challenge } => Some(challenge.clone()),
            _ => None,
        })
        .expect("the send writes a code")
}

#[test]
fn an_undo_takes_the_code_and_what_the_send_made_back_and_gives_back_its_hits() {
    let world = World::new();
    let request = login_or_create(phone());
    let (writes, plan) = committed(world.decide(&request, None, &world.empty(&request, None)));
    let ours = sent_code(&writes);
    let mut snapshot = Snapshot::new();
    snapshot.put(codes_record(&plan, Some(&ours), &[], 1));
    let undo = decide_undo(&plan.undo, &snapshot, true);
    let kinds: Vec<&str> = undo.writes.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "DeleteCodes",
            "DeleteOwner",
            "DeleteUser",
            "PutCounter",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "Tally"
        ]
    );
    let Some(Write::PutCounter { counter, expect }) = undo.writes.get(3) else {
        panic!("the hit goes back")
    };
    assert!(counter.hits.is_empty());
    assert_eq!(*expect, Expect::Rev(1));
    assert!(
        undo.writes[4..].iter().all(|w| matches!(
            w,
            Write::Tally {
                add: -1,
                limit: None,
                ..
            }
        )),
        "the SMS budgets are given back"
    );

    // Another send for the same new number delivered its code meanwhile: the user stays (it
    // has a code someone received); only this send's code and hits go.
    let theirs = Challenge {
        id: ChallengeId::generate(&world.random),
        ..ours.clone()
    };
    let mut snapshot = Snapshot::new();
    snapshot.put(codes_record(&plan, Some(&theirs), &[&ours], 2));
    let key = format!("send#{}#{PHONE}", world.app_id());
    snapshot.put(counter_record(key, &[0, 0, 5], 6));
    let undo = decide_undo(&plan.undo, &snapshot, true);
    let [
        Write::PutCodes {
            codes,
            expect: Expect::Rev(2),
        },
        Write::PutCounter {
            counter,
            expect: Expect::Rev(6),
        },
        ..,
    ] = undo.writes.as_slice()
    else {
        panic!("{:?}", undo.writes)
    };
    assert_eq!(codes.current.as_ref(), Some(&theirs));
    assert!(codes.previous.is_empty());
    assert_eq!(
        counter.hits,
        vec![NOW, NOW.plus_seconds(5)],
        "one hit at NOW goes"
    );
}

#[test]
fn a_failed_resend_puts_back_the_code_it_replaced_in_any_order() {
    let world = World::new();
    let request = login_or_create(phone());
    let (_, owner) = world.user(&phone());
    let mut snapshot = world.empty(&request, None);
    snapshot.put(Record::Owner(owner));
    let (writes, plan) = committed(world.decide(&request, None, &snapshot));
    assert_eq!(plan.undo.made, Made::Code);
    let ours = sent_code(&writes);
    let delivered = Challenge {
        id: ChallengeId::generate(&world.random),
        ..ours.clone()
    };
    let later = Challenge {
        id: ChallengeId::generate(&world.random),
        ..ours.clone()
    };
    let undo_on = |current: Option<&Challenge>, previous: &[&Challenge]| {
        let mut snapshot = Snapshot::new();
        snapshot.put(codes_record(&plan, current, previous, 4));
        decide_undo(&plan.undo, &snapshot, true).writes
    };
    // Ours is current: the one it replaced is current again.
    let writes = undo_on(Some(&ours), &[&delivered]);
    let Some(Write::PutCodes { codes, .. }) = writes.first() else {
        panic!("{writes:?}")
    };
    assert_eq!(codes.current.as_ref(), Some(&delivered));
    assert!(codes.previous.is_empty());
    // A later resend replaced ours: ours leaves the history, so that the later one's undo
    // puts back the code the user has, not ours.
    let writes = undo_on(Some(&later), &[&ours, &delivered]);
    let Some(Write::PutCodes { codes, .. }) = writes.first() else {
        panic!("{writes:?}")
    };
    assert_eq!(codes.current.as_ref(), Some(&later));
    assert_eq!(codes.previous, vec![delivered.clone()]);
}

#[test]
fn an_unanswered_send_whose_code_is_not_there_was_not_applied() {
    let world = World::new();
    let request = login_or_create(phone());
    let (_, plan) = committed(world.decide(&request, None, &world.empty(&request, None)));
    let mut snapshot = Snapshot::new();
    snapshot.set(
        Key::Codes {
            app_id: plan.undo.app_id.clone(),
            method_id: plan.undo.method_id.clone(),
        },
        None,
    );
    assert!(
        decide_undo(&plan.undo, &snapshot, false).writes.is_empty(),
        "nothing to take back, and no hit of another send taken"
    );
    assert_eq!(
        decide_undo(&plan.undo, &snapshot, true)
            .writes
            .iter()
            .map(kind)
            .collect::<Vec<_>>(),
        [
            "PutCounter",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "Tally",
            "Tally"
        ],
        "a send known to have landed gives its hits back even when its code has gone"
    );
    assert!(matches!(
        decide_undo(&plan.undo, &Snapshot::new(), true).answer,
        Err(Error::Internal(_))
    ));
}

fn kind(write: &Write) -> &'static str {
    match write {
        Write::PutUser { .. } => "PutUser",
        Write::DeleteUser { .. } => "DeleteUser",
        Write::UserUnlocked { .. } => "UserUnlocked",
        Write::PutOwner { .. } => "PutOwner",
        Write::DeleteOwner { .. } => "DeleteOwner",
        Write::ConfirmOwner { .. } => "ConfirmOwner",
        Write::Tally { .. } => "Tally",
        Write::DeleteTally { .. } => "DeleteTally",
        Write::Check { .. } => "Check",
        Write::PutCodes { .. } => "PutCodes",
        Write::ReplaceCode { .. } => "ReplaceCode",
        Write::DeleteCodes { .. } => "DeleteCodes",
        Write::PutSession { .. } => "PutSession",
        Write::DeleteSession { .. } => "DeleteSession",
        Write::PutCounter { .. } => "PutCounter",
        Write::TestIdentifierValid { .. } => "TestIdentifierValid",
    }
}
