"""Login, tokens, revocation across gateway processes, lockout and enumeration."""

import statistics
import subprocess
import time

from meshkit import BIN, free_port, wait_for
from security_fixtures import PASSWORD, PIN, key, org, tap  # noqa: F401

from invoke_centre.client import Client, DeviceKeys


def test_an_agent_logs_in_on_a_registered_phone_and_works(org, tap):
    agent = org.agent()
    answer = agent.client.invoke("quote.whoami", {})
    assert answer.status == 200, answer.body
    data = answer.data
    assert data["user_id"] == agent.user_id and data["roles"] == ["agent"]
    assert data["branch"] == "530102"
    me = agent.client.request("GET", "/v1/auth/me").data
    assert "quote:read@530102" in me["grants"] and me["terminal_id"] == agent.terminal_id
    wait_for(lambda: tap.of("login"), 5)
    assert tap.of("login")[-1]["who"]["user_id"] == agent.user_id


def test_wrong_imei_is_recorded_as_abnormal_but_the_key_decides(org, tap):
    agent = org.agent()
    answer = agent.client.login(agent.phone, pin=PIN, password=PASSWORD, imei="860000000000099")
    assert answer.status == 200
    ev = wait_for(lambda: [e for e in tap.of("abnormal") if "imei" in e["detail"]["reason"]], 5)
    assert ev[0]["who"]["user_id"] == agent.user_id


def test_another_devices_key_cannot_log_in(org, tap):
    agent = org.agent()
    thief = Client(org.mesh.url, device=DeviceKeys.generate(), terminal_id=agent.terminal_id)
    answer = thief.login(agent.phone, pin=PIN, password=PASSWORD, check=False)
    assert answer.status == 401 and answer.error["code"] == "login_failed"
    wait_for(lambda: [e for e in tap.of("abnormal") if "login proof" in e["detail"]["reason"]],
             5)


def test_lockout_after_five_failures_and_the_sixth_is_refused_even_when_right(org, tap):
    agent = org.agent()
    for _ in range(5):
        bad = agent.client.login(agent.phone, pin=PIN, password="wrong-password-x", check=False)
        assert bad.status == 401
    right = agent.client.login(agent.phone, pin=PIN, password=PASSWORD, check=False)
    assert right.status == 429 and right.error["code"] == "locked"
    wait_for(lambda: tap.of("lockout"), 5)


def test_unknown_phone_and_wrong_secret_look_the_same(org):
    agent = org.agent()
    other = org.agent()  # a second terminal, so no single subject reaches the lockout

    def attempt(client, phone):
        t = time.perf_counter()
        answer = client.login(phone, pin=PIN, password="not-the-password", check=False)
        return answer, time.perf_counter() - t

    known = [attempt(agent.client, agent.phone) for _ in range(4)]
    unknown = [attempt(other.client, f"1360000{i:04d}") for i in range(4)]
    assert {a.status for a, _ in known + unknown} == {401}
    assert {str(a.body["error"]) for a, _ in known} == {str(a.body["error"])
                                                         for a, _ in unknown}
    k, u = statistics.median(t for _, t in known), statistics.median(t for _, t in unknown)
    assert abs(k - u) < 0.5 * max(k, u), (k, u)


def test_refresh_rotates_and_reuse_revokes_the_family(org, tap):
    agent = org.agent()
    first_refresh = agent.client.refresh_token
    assert agent.client.refresh().status == 200
    assert agent.client.invoke("quote.price", {"sum_insured": 1}).status == 200
    thief = Client(org.mesh.url)
    thief.refresh_token = first_refresh
    assert thief.refresh().status == 401
    wait_for(lambda: tap.of("refresh_reuse"), 5)
    # the whole family is gone: the rightful holder's fresh tokens too
    wait_for(lambda: agent.client.invoke("quote.price", {"sum_insured": 1}).status == 401, 1.0)
    assert agent.client.refresh().status == 401


def test_logout_and_forced_relogin_stop_tokens_within_a_second(org):
    a, b = org.agent(), org.agent()
    assert a.client.logout().status == 200
    wait_for(lambda: a.client.invoke("quote.price", {"sum_insured": 1}).status == 401, 1.0)
    org.ok("POST", f"/v1/admin/users/{b.user_id}/logout", {})
    wait_for(lambda: b.client.invoke("quote.price", {"sum_insured": 1}).status == 401, 1.0)
    assert b.client.refresh().status == 401
    assert b.client.login(b.phone, pin=PIN, password=PASSWORD).status == 200
    assert b.client.invoke("quote.price", {"sum_insured": 1}).status == 200


def test_a_lost_terminal_is_refused_on_every_gateway_process_within_a_second(org):
    mesh = org.mesh
    agent = org.agent()
    port = free_port()
    mesh._spawn("gateway-2", [BIN / "gunicorn", "-k", "gthread", "-w", "2", "--threads", "4",
                              "-b", f"127.0.0.1:{port}", "invoke_centre.wsgi:application"])
    second = Client(f"http://127.0.0.1:{port}", device=agent.client.device,
                    terminal_id=agent.terminal_id)
    second.access_token = agent.client.access_token
    wait_for(lambda: _status(second) == 200, 20, 0.05, "the second gateway")
    org.ok("POST", f"/v1/admin/terminals/{agent.terminal_id}/lost", {})
    t = time.monotonic()
    wait_for(lambda: all(_status(second) == 401 for _ in range(6)), 1.0, 0.01)
    assert time.monotonic() - t <= 1.0
    assert _status(agent.client) == 401
    assert agent.client.refresh().status == 401


def _status(client: Client) -> int:
    try:
        return client.invoke("quote.price", {"sum_insured": 1}, protection="normal").status
    except Exception:
        return 0


def test_bootstrap_only_once_and_cli_login(org):
    mesh = org.mesh
    again = subprocess.run([BIN / "ics", "bootstrap", "--phone", "13900000002", "--name", "X"],
                           env={**mesh.env, "ICS_BOOTSTRAP_PASSWORD": "another-long-pass"},
                           capture_output=True, text=True)
    assert again.returncode != 0 and "users exist already" in again.stderr


def test_secrets_follow_policy(org):
    r = org.admin.request("POST", "/v1/admin/users", {
        "phone": "13712345678", "name": "Weak", "kind": "agent", "branch_code": "530102",
        "pin": "123456", "password": "password1"})
    assert r.status == 400
    assert r.error["fields"]["pin"] == ["is too easy to guess"]
    assert r.error["fields"]["password"] == ["is a commonly used password"]
    r = org.admin.request("POST", "/v1/admin/users", {
        "phone": "12345", "name": "", "kind": "wizard", "password": "x"})
    assert set(r.error["fields"]) >= {"phone", "name", "kind", "password"}


def test_an_operator_of_a_branch_cannot_reach_another(org):
    org.ok("POST", "/v1/admin/roles", {"name": "branch_operator",
                                       "permissions": ["ics:identity", "ics:terminals"]})
    op = org.agent(role="branch_operator", branch="5301", scope="5301")
    ok = op.client.request("POST", "/v1/admin/users", {
        "phone": "13711112222", "name": "Kunming agent", "kind": "agent",
        "branch_code": "530102", "pin": PIN, "password": PASSWORD})
    assert ok.status == 201, ok.body
    far = op.client.request("POST", "/v1/admin/users", {
        "phone": "13711113333", "name": "Qujing agent", "kind": "agent",
        "branch_code": "5303", "pin": PIN, "password": PASSWORD})
    assert far.status == 403
    listed = {u["branch_code"] for u in op.client.request("GET", "/v1/admin/users").data}
    assert listed <= {"5301", "530102"}
    assert op.client.request("GET", "/v1/admin/routes").status == 403


def test_a_branch_operator_cannot_escalate(org):
    org.ok("POST", "/v1/admin/roles", {"name": "branch_operator",
                                       "permissions": ["ics:identity", "ics:terminals"]})
    op = org.agent(role="branch_operator", branch="5301", scope="5301")
    peer = org.agent(branch="530102")
    c = op.client
    for user_id, role, scope in ((op.user_id, "branch_operator", "5301"),
                                 (peer.user_id, "administrator", "5301"),
                                 (peer.user_id, "agent", "530102"),
                                 (peer.user_id, "branch_operator", "*")):
        r = c.request("POST", f"/v1/admin/users/{user_id}/grants",
                      {"role": role, "scope": scope})
        assert r.status == 403, (role, scope, r.body)
    assert c.request("POST", f"/v1/admin/users/{peer.user_id}/grants",
                     {"role": "branch_operator", "scope": "530102"}).status == 201
    for method, path, body in (("GET", "/v1/admin/routes", None),
                               ("GET", "/v1/ops/bus", None),
                               ("POST", "/v1/admin/keys/rotate", {}),
                               ("POST", "/v1/admin/roles", {"name": "x", "permissions": ["*"]}),
                               ("PUT", "/v1/admin/terminal-classes/phone",
                                {"login_items": ["password"], "min_sensitivity": "normal"})):
        assert c.request(method, path, body).status == 403, path
    far = org.agent(branch="5303")
    seen = {t["id"] for t in c.request("GET", "/v1/admin/terminals").data}
    assert peer.terminal_id in seen and far.terminal_id not in seen


def test_changing_secrets_needs_the_current_one_and_counts_toward_lockout(org, tap):
    agent = org.agent()
    c = agent.client
    r = c.request("POST", "/v1/auth/secrets", {"current_pin": PIN,
                                               "new_password": "a brand new phrase"})
    assert r.status == 401  # a PIN does not change the password
    for _ in range(4):
        assert c.request("POST", "/v1/auth/secrets", {
            "current_password": "guess-guess", "new_password": "a brand new phrase"}).status \
            == 401
    r = c.request("POST", "/v1/auth/secrets", {"current_password": PASSWORD,
                                               "new_password": "a brand new phrase"})
    assert r.status == 429
    wait_for(lambda: tap.of("lockout"), 5)
