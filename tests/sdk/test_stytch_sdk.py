"""The official `stytch` Python SDK (15.3.0), unchanged, against the local development server.

Each test gets a fresh app (see conftest.py), so identifiers, codes and rate limits never
leak from one test to another. Expected values come from /work/shared/API.md (Login API).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import aiohttp
import jwt as pyjwt
import pytest
import requests
import stytch
from stytch.core.response_base import StytchError

from conftest import App, LocalServer, create_app, newest_code

PHONE = "+12025550100"  # a valid fictional US number (+1 202 555 01xx)


def unique_email() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}@example.com"


def wrong_code_for(code: str) -> str:
    return "0" * len(code) if code != "0" * len(code) else "1" * len(code)


def assert_stytch_error(excinfo, status_code: int, error_type: str) -> None:
    """The SDK raises StytchError with the parsed error body in `.details`."""
    details = excinfo.value.details
    assert details.error_type == error_type, details
    assert details.status_code == status_code, details
    assert isinstance(details.error_message, str) and details.error_message, details
    assert details.request_id.startswith("request-id-"), details
    # The body was parsed (not the SDK's "unknown error" fallback, which loses error_type).
    assert details.original_json is not None, details
    assert details.original_json.get("status_code") == status_code, details


def with_rate_limit_retry(call, *args, **kwargs):
    """Calls a send endpoint; on 429 too_many_requests waits Retry-After once and retries.

    The contract allows one code per identifier per 30 s, so a second send to the same
    identifier within a test may legitimately be refused first.
    """
    try:
        return call(*args, **kwargs)
    except StytchError as error:
        if error.details.error_type != "too_many_requests":
            raise
        wait = (error.details.original_json or {}).get("retry_after_seconds", 31)
        assert 0 < wait <= 60, error.details
        time.sleep(wait + 0.5)
        return call(*args, **kwargs)


def jwt_parts(token: str):
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    return header, claims


# --------------------------------------------------------------------------------------------
# SMS: login_or_create -> authenticate -> sessions (token, local JWT, list, revoke)
# --------------------------------------------------------------------------------------------


def test_sms_login_flow(server: LocalServer, app: App, client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    assert sent.status_code == 200
    assert sent.request_id.startswith("request-id-")
    assert sent.user_created is True
    assert sent.user_id.startswith("user-")
    assert sent.phone_id.startswith("phone-number-")

    code = read_code(PHONE)
    assert len(code) == 6

    auth = client.otps.authenticate(
        method_id=sent.phone_id, code=code, session_duration_minutes=60
    )
    assert auth.status_code == 200
    assert auth.user_id == sent.user_id
    assert auth.method_id == sent.phone_id
    assert auth.reset_sessions is False
    assert auth.session_token
    assert auth.session_jwt
    assert auth.session is not None
    session = auth.session
    assert session.session_id.startswith("session-")
    assert session.user_id == sent.user_id
    assert session.started_at is not None and session.expires_at is not None
    lifetime = session.expires_at - session.started_at
    assert timedelta(minutes=59) <= lifetime <= timedelta(minutes=61), lifetime
    factor = session.authentication_factors[0]
    assert factor.type == "otp"
    assert factor.delivery_method == "sms"
    assert factor.phone_number_factor is not None
    assert factor.phone_number_factor.phone_id == sent.phone_id
    assert factor.phone_number_factor.phone_number == PHONE

    user = auth.user
    assert user.user_id == sent.user_id
    assert user.status == "active"
    assert user.is_locked is False
    assert len(user.phone_numbers) == 1
    assert user.phone_numbers[0].phone_id == sent.phone_id
    assert user.phone_numbers[0].phone_number == PHONE
    assert user.phone_numbers[0].verified is True
    assert user.emails == []

    # The session JWT's shape (API.md, Sessions).
    header, claims = jwt_parts(auth.session_jwt)
    assert header["alg"] == "RS256"
    assert header["typ"] == "JWT"
    assert header.get("kid")
    assert claims["iss"] == server.base_url
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert app.id in aud
    assert claims["sub"] == sent.user_id
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= claims["iat"] + 1
    assert claims["https://stytch.com/session"]["id"] == session.session_id
    jwks = client.sessions.get_jwks(project_id=app.id)
    assert header["kid"] in [key.kid for key in jwks.keys]

    by_token = client.sessions.authenticate(session_token=auth.session_token)
    assert by_token.status_code == 200
    assert by_token.session.session_id == session.session_id
    assert by_token.session.user_id == sent.user_id
    assert by_token.session_token == auth.session_token
    assert by_token.session_jwt
    assert by_token.user.user_id == sent.user_id

    local = client.sessions.authenticate_jwt_local(session_jwt=auth.session_jwt)
    assert local is not None, "authenticate_jwt_local rejected the server's session_jwt"
    assert local.session_id == session.session_id
    assert local.user_id == sent.user_id
    assert local.authentication_factors[0].delivery_method == "sms"

    # authenticate_jwt: local first, remote only when local returns None.
    via_jwt = client.sessions.authenticate_jwt(session_jwt=auth.session_jwt)
    assert via_jwt.session.session_id == session.session_id

    listed = client.sessions.get(user_id=sent.user_id)
    assert listed.status_code == 200
    assert session.session_id in [s.session_id for s in listed.sessions]

    revoked = client.sessions.revoke(session_token=auth.session_token)
    assert revoked.status_code == 200
    assert revoked.request_id.startswith("request-id-")

    with pytest.raises(StytchError) as excinfo:
        client.sessions.authenticate(session_token=auth.session_token)
    assert_stytch_error(excinfo, 404, "session_not_found")

    # A revoked session is gone for its (still validly signed) JWT too, and is not listed.
    with pytest.raises(StytchError) as excinfo:
        client.sessions.authenticate(session_jwt=auth.session_jwt)
    assert_stytch_error(excinfo, 404, "session_not_found")
    listed = client.sessions.get(user_id=sent.user_id)
    assert session.session_id not in [s.session_id for s in listed.sessions]


# --------------------------------------------------------------------------------------------
# Email: login_or_create -> authenticate -> sessions.authenticate(JWT) -> users.get / delete
# --------------------------------------------------------------------------------------------


def test_email_login_flow(client: stytch.Client, read_code):
    email = unique_email()
    sent = client.otps.email.login_or_create(email=email)
    assert sent.status_code == 200
    assert sent.user_created is True
    assert sent.user_id.startswith("user-")
    assert sent.email_id.startswith("email-")

    code = read_code(email)
    auth = client.otps.authenticate(
        method_id=sent.email_id, code=code, session_duration_minutes=60
    )
    assert auth.user_id == sent.user_id
    assert auth.method_id == sent.email_id
    assert auth.session_token and auth.session_jwt
    assert auth.session is not None
    factor = auth.session.authentication_factors[0]
    assert factor.type == "otp"
    assert factor.delivery_method == "email"
    assert factor.email_factor is not None
    assert factor.email_factor.email_id == sent.email_id
    assert factor.email_factor.email_address == email
    assert auth.user.emails[0].verified is True

    by_jwt = client.sessions.authenticate(session_jwt=auth.session_jwt)
    assert by_jwt.status_code == 200
    assert by_jwt.session.session_id == auth.session.session_id
    assert by_jwt.user.user_id == sent.user_id
    assert by_jwt.session_jwt
    # Authenticated by JWT alone, the token is not known to the server (stored as a hash).
    assert by_jwt.session_token == ""

    user = client.users.get(user_id=sent.user_id)
    assert user.status_code == 200
    assert user.user_id == sent.user_id
    assert user.status == "active"
    assert len(user.emails) == 1
    assert user.emails[0].email_id == sent.email_id
    assert user.emails[0].email == email
    assert user.emails[0].verified is True
    assert user.phone_numbers == []
    assert user.is_locked is False

    deleted = client.users.delete(user_id=sent.user_id)
    assert deleted.status_code == 200
    assert deleted.user_id == sent.user_id

    with pytest.raises(StytchError) as excinfo:
        client.users.get(user_id=sent.user_id)
    assert_stytch_error(excinfo, 404, "user_not_found")

    # Deleting the user deleted its sessions.
    with pytest.raises(StytchError) as excinfo:
        client.sessions.authenticate(session_token=auth.session_token)
    assert_stytch_error(excinfo, 404, "session_not_found")


# --------------------------------------------------------------------------------------------
# Errors and edge cases
# --------------------------------------------------------------------------------------------


def test_wrong_code_is_otp_code_not_found(client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    code = read_code(PHONE)

    with pytest.raises(StytchError) as excinfo:
        client.otps.authenticate(method_id=sent.phone_id, code=wrong_code_for(code))
    assert_stytch_error(excinfo, 404, "otp_code_not_found")
    # Additive field of the contract: wrong attempts the code still accepts (5 per code).
    assert excinfo.value.details.original_json.get("attempts_remaining") == 4

    # One wrong attempt does not kill the code.
    auth = client.otps.authenticate(
        method_id=sent.phone_id, code=code, session_duration_minutes=5
    )
    assert auth.user_id == sent.user_id
    assert auth.session is not None


def test_unknown_method_id_is_otp_code_not_found(client: stytch.Client):
    with pytest.raises(StytchError) as excinfo:
        client.otps.authenticate(
            method_id=f"phone-number-{uuid.uuid4()}", code="123456"
        )
    assert_stytch_error(excinfo, 404, "otp_code_not_found")


def test_login_or_create_again_finds_the_same_user(client: stytch.Client, read_code):
    first = client.otps.sms.login_or_create(phone_number=PHONE)
    assert first.user_created is True
    first_code = read_code(PHONE)

    second = with_rate_limit_retry(client.otps.sms.login_or_create, phone_number=PHONE)
    assert second.status_code == 200
    assert second.user_created is False
    assert second.user_id == first.user_id
    assert second.phone_id == first.phone_id

    second_code = read_code(PHONE)
    if second_code != first_code:
        # Only the newest code of a method works; an older one counts as a wrong code.
        with pytest.raises(StytchError) as excinfo:
            client.otps.authenticate(method_id=first.phone_id, code=first_code)
        assert_stytch_error(excinfo, 404, "otp_code_not_found")
    auth = client.otps.authenticate(method_id=second.phone_id, code=second_code)
    assert auth.user_id == first.user_id


def test_email_login_or_create_is_case_insensitive(client: stytch.Client):
    email = unique_email()
    first = client.otps.email.login_or_create(email=email)
    assert first.user_created is True
    second = with_rate_limit_retry(client.otps.email.login_or_create, email=email.upper())
    assert second.user_created is False
    assert second.user_id == first.user_id
    assert second.email_id == first.email_id


def test_sms_send_to_unknown_number(client: stytch.Client):
    with pytest.raises(StytchError) as excinfo:
        client.otps.sms.send(phone_number="+12025550101")
    assert_stytch_error(excinfo, 404, "phone_number_not_found")


def test_email_send_to_unknown_address(client: stytch.Client):
    with pytest.raises(StytchError) as excinfo:
        client.otps.email.send(email=unique_email())
    assert_stytch_error(excinfo, 404, "email_not_found")


def test_sms_send_to_existing_user(client: stytch.Client, read_code):
    created = client.otps.sms.login_or_create(phone_number=PHONE)
    sent = with_rate_limit_retry(client.otps.sms.send, phone_number=PHONE)
    assert sent.status_code == 200
    assert sent.user_id == created.user_id
    assert sent.phone_id == created.phone_id
    auth = client.otps.authenticate(method_id=sent.phone_id, code=read_code(PHONE))
    assert auth.user_id == created.user_id


@pytest.mark.parametrize("phone_number", ["+15555550100", "+1202555"])
def test_invalid_phone_number(client: stytch.Client, phone_number: str):
    with pytest.raises(StytchError) as excinfo:
        client.otps.sms.login_or_create(phone_number=phone_number)
    assert_stytch_error(excinfo, 400, "invalid_phone_number")


def test_invalid_email(client: stytch.Client):
    with pytest.raises(StytchError) as excinfo:
        client.otps.email.login_or_create(email="not-an-email")
    assert_stytch_error(excinfo, 400, "invalid_email")


def test_wrong_secret_is_unauthorized(server: LocalServer, app: App):
    wrong = stytch.Client(
        project_id=app.id, secret="secret-" + "A" * 43, environment=server.environment
    )
    with pytest.raises(StytchError) as excinfo:
        wrong.otps.sms.login_or_create(phone_number=PHONE)
    assert_stytch_error(excinfo, 401, "unauthorized_credentials")


def test_unknown_project_is_unauthorized(server: LocalServer, app: App):
    unknown = stytch.Client(
        project_id=f"app-{uuid.uuid4()}", secret=app.secret, environment=server.environment
    )
    with pytest.raises(StytchError) as excinfo:
        unknown.otps.sms.login_or_create(phone_number=PHONE)
    assert_stytch_error(excinfo, 401, "unauthorized_credentials")


def test_get_jwks(server: LocalServer, app: App, client: stytch.Client):
    jwks = client.sessions.get_jwks(project_id=app.id)
    assert jwks.status_code == 200
    assert jwks.request_id.startswith("request-id-")
    assert jwks.keys
    for key in jwks.keys:
        assert key.kid
        assert key.kty == "RSA"
        assert key.alg == "RS256"
        assert key.use == "sig"
        assert "verify" in key.key_ops
        assert key.n and key.e

    # The SDKs' local verifiers fetch the JWKS without credentials.
    public = requests.get(f"{server.base_url}/v1/sessions/jwks/{app.id}", timeout=10)
    assert public.status_code == 200
    assert sorted(k["kid"] for k in public.json()["keys"]) == sorted(k.kid for k in jwks.keys)


def test_get_jwks_of_unknown_app(client: stytch.Client):
    with pytest.raises(StytchError) as excinfo:
        client.sessions.get_jwks(project_id=f"app-{uuid.uuid4()}")
    assert_stytch_error(excinfo, 404, "app_not_found")


def test_authenticate_without_session_duration(client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    auth = client.otps.authenticate(method_id=sent.phone_id, code=read_code(PHONE))
    assert auth.status_code == 200
    assert auth.user_id == sent.user_id
    assert auth.session_token == ""
    assert auth.session_jwt == ""
    assert auth.session is None
    assert auth.user.phone_numbers[0].verified is True
    assert client.sessions.get(user_id=sent.user_id).sessions == []


def test_code_is_single_use(client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    code = read_code(PHONE)
    client.otps.authenticate(method_id=sent.phone_id, code=code)
    with pytest.raises(StytchError) as excinfo:
        client.otps.authenticate(method_id=sent.phone_id, code=code)
    assert_stytch_error(excinfo, 401, "unable_to_auth_otp_code")


def test_apps_are_isolated(server: LocalServer, client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    code = read_code(PHONE)
    other = create_app(server, f"sdk isolation {uuid.uuid4().hex[:8]}")
    other_client = stytch.Client(
        project_id=other.id, secret=other.secret, environment=server.environment
    )
    # The other app knows neither the method nor the user.
    with pytest.raises(StytchError) as excinfo:
        other_client.otps.authenticate(method_id=sent.phone_id, code=code)
    assert_stytch_error(excinfo, 404, "otp_code_not_found")
    with pytest.raises(StytchError) as excinfo:
        other_client.users.get(user_id=sent.user_id)
    assert_stytch_error(excinfo, 404, "user_not_found")


def test_development_app_printed_at_start(server: LocalServer):
    dev = stytch.Client(
        project_id=server.dev_app.id,
        secret=server.dev_app.secret,
        environment=server.environment,
    )
    phone = "+12025550199"
    sent = dev.otps.sms.login_or_create(phone_number=phone)
    assert sent.user_created is True
    auth = dev.otps.authenticate(
        method_id=sent.phone_id,
        code=newest_code(server, phone),
        session_duration_minutes=5,
    )
    assert auth.session is not None
    assert dev.sessions.authenticate_jwt_local(session_jwt=auth.session_jwt) is not None


# --------------------------------------------------------------------------------------------
# Async methods (aiohttp)
# --------------------------------------------------------------------------------------------


def test_async_sms_login_flow(server: LocalServer, app: App):
    async def flow():
        async with aiohttp.ClientSession() as http:
            client = stytch.Client(
                project_id=app.id,
                secret=app.secret,
                environment=server.environment,
                async_session=http,
            )
            sent = await client.otps.sms.login_or_create_async(phone_number=PHONE)
            assert sent.status_code == 200
            assert sent.user_created is True

            code = await asyncio.to_thread(newest_code, server, PHONE)
            auth = await client.otps.authenticate_async(
                method_id=sent.phone_id, code=code, session_duration_minutes=60
            )
            assert auth.user_id == sent.user_id
            assert auth.session is not None
            assert auth.session_token and auth.session_jwt
            assert auth.user.phone_numbers[0].verified is True

            by_token = await client.sessions.authenticate_async(session_token=auth.session_token)
            assert by_token.session.session_id == auth.session.session_id

            local = await client.sessions.authenticate_jwt_local_async(
                session_jwt=auth.session_jwt
            )
            assert local is not None
            assert local.session_id == auth.session.session_id
            assert local.user_id == sent.user_id

            listed = await client.sessions.get_async(user_id=sent.user_id)
            assert auth.session.session_id in [s.session_id for s in listed.sessions]

            await client.sessions.revoke_async(session_token=auth.session_token)
            with pytest.raises(StytchError) as excinfo:
                await client.sessions.authenticate_async(session_token=auth.session_token)
            assert_stytch_error(excinfo, 404, "session_not_found")

    asyncio.run(flow())


# --------------------------------------------------------------------------------------------
# More of the contract, as seen through the SDK
# --------------------------------------------------------------------------------------------


def test_send_rate_limit_per_identifier(client: stytch.Client):
    """API.md: one code per identifier per 30 seconds; a refused send answers 429."""
    client.otps.sms.login_or_create(phone_number=PHONE)
    with pytest.raises(StytchError) as excinfo:
        second = client.otps.sms.login_or_create(phone_number=PHONE)
        pytest.fail(f"a second code within 30 s was accepted: {second}")
    assert_stytch_error(excinfo, 429, "too_many_requests")
    retry_after = excinfo.value.details.original_json.get("retry_after_seconds")
    assert isinstance(retry_after, int) and 1 <= retry_after <= 30, excinfo.value.details


def test_create_user_as_pending(client: stytch.Client, read_code):
    email = unique_email()
    sent = client.otps.email.login_or_create(email=email, create_user_as_pending=True)
    assert sent.user_created is True
    assert client.users.get(user_id=sent.user_id).status == "pending"
    auth = client.otps.authenticate(method_id=sent.email_id, code=read_code(email))
    assert auth.user.status == "active"
    assert client.users.get(user_id=sent.user_id).status == "active"


def test_session_custom_claims(client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    auth = client.otps.authenticate(
        method_id=sent.phone_id,
        code=read_code(PHONE),
        session_duration_minutes=30,
        session_custom_claims={"plan": "pro", "org": {"id": 7}},
    )
    assert auth.session.custom_claims == {"plan": "pro", "org": {"id": 7}}
    _, claims = jwt_parts(auth.session_jwt)
    assert claims["plan"] == "pro" and claims["org"] == {"id": 7}
    local = client.sessions.authenticate_jwt_local(session_jwt=auth.session_jwt)
    assert local is not None
    assert local.custom_claims == {"plan": "pro", "org": {"id": 7}}


def test_reserved_custom_claim_is_rejected(client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    with pytest.raises(StytchError) as excinfo:
        client.otps.authenticate(
            method_id=sent.phone_id,
            code=read_code(PHONE),
            session_duration_minutes=30,
            session_custom_claims={"sub": "someone-else"},
        )
    assert_stytch_error(excinfo, 400, "invalid_session_custom_claims")


def test_sessions_authenticate_extends_the_session(client: stytch.Client, read_code):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    auth = client.otps.authenticate(
        method_id=sent.phone_id, code=read_code(PHONE), session_duration_minutes=10
    )
    extended = client.sessions.authenticate(
        session_token=auth.session_token, session_duration_minutes=120
    )
    assert extended.session.session_id == auth.session.session_id
    assert extended.session.expires_at - auth.session.expires_at >= timedelta(minutes=100)


def test_invalid_session_jwt(client: stytch.Client):
    with pytest.raises(StytchError) as excinfo:
        client.sessions.authenticate(session_jwt="not.a.jwt")
    assert_stytch_error(excinfo, 401, "invalid_session_jwt")


def test_jwt_of_another_app_is_invalid(server: LocalServer, client: stytch.Client):
    other = create_app(server, f"sdk other {uuid.uuid4().hex[:8]}")
    other_client = stytch.Client(
        project_id=other.id, secret=other.secret, environment=server.environment
    )
    phone = "+12025550102"
    sent = other_client.otps.sms.login_or_create(phone_number=phone)
    auth = other_client.otps.authenticate(
        method_id=sent.phone_id, code=newest_code(server, phone), session_duration_minutes=5
    )
    # Signed by the other app's own key for the other audience: neither the server nor the
    # local check accepts it here. This app's JWKS does not even hold the key, so the SDK's
    # local check refuses it before it reads a claim.
    with pytest.raises(StytchError) as excinfo:
        client.sessions.authenticate(session_jwt=auth.session_jwt)
    assert_stytch_error(excinfo, 401, "invalid_session_jwt")
    with pytest.raises(pyjwt.exceptions.PyJWKClientError):
        client.sessions.authenticate_jwt_local(session_jwt=auth.session_jwt)
    # And its token is unknown here.
    with pytest.raises(StytchError) as excinfo:
        client.sessions.authenticate(session_token=auth.session_token)
    assert_stytch_error(excinfo, 404, "session_not_found")


@pytest.mark.parametrize("minutes", [0, 11])
def test_invalid_expiration_minutes(client: stytch.Client, minutes: int):
    with pytest.raises(StytchError) as excinfo:
        client.otps.sms.login_or_create(phone_number=PHONE, expiration_minutes=minutes)
    assert_stytch_error(excinfo, 400, "invalid_expiration_minutes")


@pytest.mark.parametrize("minutes", [4, 527041])
def test_invalid_session_duration(client: stytch.Client, read_code, minutes: int):
    sent = client.otps.sms.login_or_create(phone_number=PHONE)
    with pytest.raises(StytchError) as excinfo:
        client.otps.authenticate(
            method_id=sent.phone_id, code=read_code(PHONE), session_duration_minutes=minutes
        )
    assert_stytch_error(excinfo, 400, "invalid_session_duration")


def test_send_adds_a_phone_number_to_a_user(client: stytch.Client, read_code):
    email = unique_email()
    created = client.otps.email.login_or_create(email=email)
    sent = client.otps.sms.send(phone_number=PHONE, user_id=created.user_id)
    assert sent.user_id == created.user_id
    auth = client.otps.authenticate(method_id=sent.phone_id, code=read_code(PHONE))
    assert auth.user_id == created.user_id
    user = client.users.get(user_id=created.user_id)
    assert [p.phone_number for p in user.phone_numbers] == [PHONE]
    assert user.phone_numbers[0].verified is True
    assert user.emails[0].verified is False


def test_send_to_a_number_of_another_user_is_a_duplicate(client: stytch.Client):
    owner = client.otps.sms.login_or_create(phone_number=PHONE)
    other = client.otps.email.login_or_create(email=unique_email())
    assert other.user_id != owner.user_id
    with pytest.raises(StytchError) as excinfo:
        with_rate_limit_retry(client.otps.sms.send, phone_number=PHONE, user_id=other.user_id)
    assert_stytch_error(excinfo, 409, "duplicate_phone_number")
