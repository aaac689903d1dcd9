//! The adversarial suite, written once for any store: concurrency, replay, hostile input,
//! faults and secrets at rest, every request through `crate::api::handle` as a deployment
//! serves it. A store takes part by implementing [`Backend`]; a test crate then generates one
//! `#[tokio::test]` per behaviour with [`adversarial_tests!`](crate::adversarial_tests):
//!
//! ```ignore
//! // shared/tests/adversarial.rs: the whole suite on the in-memory store.
//! shared::adversarial_tests!(shared::adversarial::InMemoryBackend);
//! ```
//!
//! The crate needs `otp-shared` with the feature `adversarial-tests` and `tokio` with `macros`
//! and `rt-multi-thread`. Each behaviour makes its own fresh store ([`Backend::fresh`]), so the
//! tests run in parallel and in any order.
//!
//! - `accounts`: an attacker attaching a victim's number to their own user and never verifying
//!   it (the victim's login makes the victim's own user), and a first verification on a user
//!   with another method revoking its other sessions (`reset_sessions`).
//! - `budgets`: SMS budgets and the verification floor against a pumping run (many fresh numbers
//!   of one prefix, codes never entered), through the management API and the sends.
//! - `concurrency`: racing requests (100 right codes, 100 wrong codes, guesses over several
//!   codes against the user lock, login_or_create of one identifier, sends against the rate
//!   limits, deletes of an app's last two secrets, a user deleted while it authenticates), each
//!   also with a yield before every store call so that requests interleave at every one.
//! - `replay`: used, expired and replaced codes, other apps' and users' codes and sessions,
//!   revoked, expired and deleted users' sessions, tampered JWTs, test identifiers past
//!   `valid_until` and deleted, management ids across apps, requests refused before the code is
//!   spent.
//! - `faults`: every store and delivery call of login_or_create, authenticate and
//!   sessions.authenticate failing in turn (unavailable, broken, or its answer lost after it was
//!   made), and faults below the store where the backend can inject them (lost answers,
//!   throttling, transaction conflicts): each a clear answer that leaves the state of a clean
//!   success or a clean failure; and two sends to one number whose deliveries overlap and fail.
//! - `input`: the hostile-input corpus (thousands of requests, proptest included), all of it or
//!   the sample a backend asks for ([`Corpus`]); a key repeated anywhere in a body.
//! - `evasion`: values of another kind or spelling that try to get past a rule: numbers that
//!   cannot receive SMS, a region behind a shared calling code (and calling codes stored before
//!   regions), spellings of one email address and `+tags` of one mailbox, spellings of one IPv4
//!   address and the addresses of one IPv6 /64, control and bidirectional-override characters.
//! - `secrets`: no plaintext code, secret, token, management key or code key in the store (the
//!   backend's [`Backend::dump`]) or in the logs.
//!
//! Where the domain is found wrong, the failing test stays, marked
//! `#[ignore = "bug: ..."]` in the macro, until the domain is fixed.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::ids::AppId;
use crate::memory::MemoryStore;
use crate::ports::{AppStore, ConfigStore, LoginStore};

pub mod accounts;
pub mod budgets;
pub mod concurrency;
pub mod evasion;
pub mod faults;
pub mod input;
pub mod replay;
pub mod secrets;
pub mod support;

/// The three store ports of one fresh store.
#[derive(Clone)]
pub struct Ports {
    pub apps: Arc<dyn AppStore>,
    pub configs: Arc<dyn ConfigStore>,
    pub login: Arc<dyn LoginStore>,
}

/// How much of the hostile-input corpus a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    /// Every request of the corpus, proptest included.
    Full,
    /// The requests whose values can reach the store once validated (free-form fields, long
    /// attributes, hostile and foreign path parameters, spellings of identifiers): parsing and
    /// validation are the same code on every store, so a slow store runs only these.
    Sample,
}

/// A fault done below the store's ports, in the client of a remote store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BelowFault {
    /// The request is applied, its answer replaced by a server error: the client retries the
    /// same request (with the same idempotency token).
    LoseAnswer,
    /// The request is refused as throttled, without being applied; the client retries it.
    Throttle,
    /// A transaction is cancelled by a conflicting one, without being applied.
    TransactionConflict,
}

/// Which requests of an operation a below-store fault hits, counted from when it is armed,
/// every attempt (the client's retries included) counting as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The first `n`.
    First(u32),
    /// Only the `n`-th (1 = the first).
    Nth(u32),
    /// Every one.
    Always,
}

/// Faults below a store's ports: what a backend with a remote client can inject there.
pub trait BelowStore: Send + Sync {
    /// Requests made so far, by operation, every attempt counted.
    fn requests(&self) -> BTreeMap<String, u32>;
    /// Whether `fault` means anything for `operation` (a transaction conflict only for a
    /// transaction).
    fn applies(&self, operation: &str, fault: BelowFault) -> bool;
    /// From now on, does `fault` to the requests of `operation` that `times` names.
    fn inject(&self, operation: &str, fault: BelowFault, times: Times);
    /// Removes every fault.
    fn disarm(&self);
}

/// A store the suite can run on.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// One fresh store as the backend keeps it (whatever `dump` and `below` need).
    type Fresh: Send + Sync + 'static;

    /// A fresh, empty store (for DynamoDB a fresh table) and its ports, or `None` when the
    /// backend cannot run here: the test then passes after the backend printed why. A backend
    /// that must run (under CI) panics instead.
    async fn fresh(&self) -> Option<(Self::Fresh, Ports)>;

    /// Everything `fresh` holds, as text: one line per record (item), every value in it
    /// legible: strings as `{:?}` shows them, numbers in decimal, bytes in hex and as a list of
    /// decimal bytes. The secrets checks search it, and the suite reads users and sessions from
    /// it that no port lists.
    async fn dump(&self, fresh: &Self::Fresh) -> String;

    /// How much of the hostile-input corpus to run.
    fn corpus(&self) -> Corpus;

    /// Faults below the ports, when the store has a client to inject them in.
    fn below<'a>(&self, _fresh: &'a Self::Fresh) -> Option<&'a dyn BelowStore> {
        None
    }

    /// Writes an app's SMS countries as earlier versions stored them, as country calling codes
    /// (the store's own record of them, behind the ports), so that the suite can show they read
    /// back as regions. `false` when the backend cannot (the behaviour then passes after a
    /// notice).
    async fn put_sms_calling_codes_as_before(
        &self,
        _fresh: &Self::Fresh,
        _app_id: &AppId,
        _calling_codes: &[String],
    ) -> bool {
        false
    }
}

/// The whole suite in memory.
#[derive(Debug, Default, Clone, Copy)]
pub struct InMemoryBackend;

#[async_trait]
impl Backend for InMemoryBackend {
    type Fresh = Arc<MemoryStore>;

    async fn fresh(&self) -> Option<(Self::Fresh, Ports)> {
        let store = Arc::new(MemoryStore::new());
        let ports = Ports {
            apps: store.clone(),
            configs: store.clone(),
            login: store.clone(),
        };
        Some((store, ports))
    }

    async fn dump(&self, fresh: &Self::Fresh) -> String {
        fresh.dump_for_inspection()
    }

    fn corpus(&self) -> Corpus {
        Corpus::Full
    }

    async fn put_sms_calling_codes_as_before(
        &self,
        fresh: &Self::Fresh,
        app_id: &AppId,
        calling_codes: &[String],
    ) -> bool {
        fresh.put_sms_calling_codes_as_before(app_id, calling_codes.to_vec());
        true
    }
}

/// A backend as the suite's functions take it (its store type erased).
#[derive(Clone)]
pub struct Target(Arc<dyn AnyBackend>);

impl Target {
    pub fn new<B: Backend>(backend: B) -> Self {
        Target(Arc::new(Arc::new(backend)))
    }

    pub fn corpus(&self) -> Corpus {
        self.0.corpus()
    }

    pub(crate) async fn fresh(&self) -> Option<(Ports, Arc<dyn Held>)> {
        self.0.fresh().await
    }
}

/// One fresh store, held for its dump and its below-store faults.
#[async_trait]
pub(crate) trait Held: Send + Sync {
    async fn dump(&self) -> String;
    fn below(&self) -> Option<&dyn BelowStore>;
    async fn put_sms_calling_codes_as_before(
        &self,
        app_id: &AppId,
        calling_codes: &[String],
    ) -> bool;
}

struct Fresh<B: Backend> {
    backend: Arc<B>,
    fresh: B::Fresh,
}

#[async_trait]
impl<B: Backend> Held for Fresh<B> {
    async fn dump(&self) -> String {
        self.backend.dump(&self.fresh).await
    }

    fn below(&self) -> Option<&dyn BelowStore> {
        self.backend.below(&self.fresh)
    }

    async fn put_sms_calling_codes_as_before(
        &self,
        app_id: &AppId,
        calling_codes: &[String],
    ) -> bool {
        self.backend
            .put_sms_calling_codes_as_before(&self.fresh, app_id, calling_codes)
            .await
    }
}

#[async_trait]
trait AnyBackend: Send + Sync {
    fn corpus(&self) -> Corpus;
    async fn fresh(&self) -> Option<(Ports, Arc<dyn Held>)>;
}

#[async_trait]
impl<B: Backend> AnyBackend for Arc<B> {
    fn corpus(&self) -> Corpus {
        Backend::corpus(&**self)
    }

    async fn fresh(&self) -> Option<(Ports, Arc<dyn Held>)> {
        let (fresh, ports) = Backend::fresh(&**self).await?;
        let held: Arc<dyn Held> = Arc::new(Fresh {
            backend: self.clone(),
            fresh,
        });
        Some((ports, held))
    }
}

/// One `#[tokio::test]` (multi-thread) per behaviour of the adversarial suite, each on the
/// backend the given expression makes (evaluated inside the async test, so it may `.await`; its
/// type implements [`Backend`](crate::adversarial::Backend)). The calling crate needs `tokio`
/// with `macros` and `rt-multi-thread`. A behaviour that shows a known bug of the domain is
/// generated `#[ignore]`d with the bug's one-line description.
#[macro_export]
macro_rules! adversarial_tests {
    ($make:expr) => {
        $crate::adversarial_tests!(@tests $make;
            concurrency::right_code_from_100_concurrent_requests_succeeds_exactly_once,
            concurrency::wrong_codes_from_100_concurrent_requests_count_exactly_five,
            concurrency::right_code_racing_wrong_guesses_lets_at_most_five_guesses_through,
            concurrency::guesses_over_three_codes_stop_at_exactly_the_user_lock,
            concurrency::fifty_concurrent_login_or_create_make_one_user,
            concurrency::concurrent_login_or_create_with_differently_cased_emails_make_one_user,
            concurrency::concurrent_sends_respect_the_cooldown_and_the_ip_window,
            concurrency::rate_limits_count_on_every_counter_or_on_none,
            concurrency::concurrent_deletes_of_the_last_two_secrets_keep_one,
            concurrency::a_user_deleted_while_it_authenticates_keeps_no_session,

            accounts::an_attached_unverified_number_does_not_route_the_victims_login,
            accounts::a_taken_attachment_cannot_be_verified_by_its_former_user,
            accounts::a_first_verification_on_an_existing_user_resets_its_other_sessions,

            budgets::a_pumping_run_stops_at_the_prefix_budget,
            budgets::app_and_region_budgets_count_only_delivered_sends,
            budgets::a_region_with_few_verified_codes_is_paused_until_reset,
            budgets::malformed_budgets_are_refused,
            budgets::an_sms_carries_the_lines_that_fill_its_code_in,

            replay::a_used_code_is_refused,
            replay::an_expired_code_is_refused_even_when_right,
            replay::a_replaced_code_counts_as_a_wrong_code_and_the_new_one_works,
            replay::a_code_of_another_app_is_not_found_and_costs_its_owner_nothing,
            replay::another_users_code_does_not_open_my_method,
            replay::sessions_and_jwts_do_not_cross_apps,
            replay::revoked_and_expired_sessions_are_not_found,
            replay::a_deleted_users_sessions_and_codes_are_gone,
            replay::tampered_jwts_are_invalid,
            replay::test_identifier_codes_stop_at_valid_until_and_at_deletion,
            replay::management_ids_of_one_app_are_not_found_under_another,
            replay::a_mismatched_session_does_not_spend_the_code,
            replay::a_refused_session_extension_does_not_spend_the_code,

            faults::sms_login_or_create_of_a_new_user_fails_cleanly_at_every_step,
            faults::sms_login_or_create_of_an_existing_user_fails_cleanly_at_every_step,
            faults::email_login_or_create_of_a_new_user_fails_cleanly_at_every_step,
            faults::email_login_or_create_of_an_existing_user_fails_cleanly_at_every_step,
            faults::authenticate_with_the_right_code_fails_cleanly_at_every_step,
            faults::authenticate_with_a_wrong_code_fails_cleanly_at_every_step,
            faults::sessions_authenticate_fails_cleanly_at_every_step,
            faults::lost_answers_below_the_store_are_applied_once,
            faults::throttling_and_transaction_conflicts_are_retried_then_answered_503,
            faults::overlapping_failed_sends_to_a_new_number_leave_no_user,
            faults::overlapping_failed_resends_give_the_earlier_code_back,
            faults::overlapping_failed_resends_in_the_other_order_give_the_earlier_code_back,
            faults::a_failed_send_overlapped_by_a_delivered_one_keeps_what_that_one_answered,

            input::every_route_refuses_missing_and_wrong_credentials,
            input::every_route_answers_oversized_bodies_413_with_or_without_credentials,
            input::non_json_bodies_are_415_and_malformed_json_is_400,
            input::malformed_json_in_an_unknown_field_is_still_400,
            input::every_field_of_every_route_survives_every_hostile_value,
            input::long_attributes_are_refused_or_stored,
            input::hostile_and_foreign_path_parameters_are_answered_not_found,
            input::unicode_phone_numbers_never_split_an_identity,
            input::key_separators_and_the_longest_emails_keep_identities_apart,
            input::prop_random_bodies_never_answer_5xx,
            input::prop_random_ids_in_paths_and_queries_are_not_found,
            input::prop_random_authorization_headers_never_open_a_route,
            input::duplicate_keys_are_refused_at_any_depth_on_every_route,

            evasion::numbers_that_cannot_receive_sms_are_refused_with_a_clear_400,
            evasion::sms_countries_are_regions_and_calling_codes_mean_what_they_meant,
            evasion::calling_codes_stored_before_regions_read_as_their_regions,
            evasion::email_spellings_are_one_user_and_tags_share_their_mailbox_window,
            evasion::ipv4_mapped_spellings_share_the_ipv4_window_and_ipv6_counts_by_its_64,
            evasion::control_and_bidi_characters_are_refused_in_names_subjects_and_bodies,

            secrets::the_store_holds_no_secret_code_token_or_key,
            secrets::the_logs_hold_no_secret_code_token_or_personal_data,
        );
    };
    (@tests $make:expr; $($(#[$meta:meta])* $module:ident :: $name:ident),+ $(,)?) => {
        $(
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let target = $crate::adversarial::Target::new($make);
                $crate::adversarial::$module::$name(target).await;
            }
        )+
    };
}
