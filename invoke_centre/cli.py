"""``ics``: the operators' command-line tool.

Everything but ``ics db upgrade`` and ``ics bootstrap`` goes through the gateway's API
(``--url`` / ``ICS_URL``), as the operator who logged in with ``ics login`` (the session is kept
in ``ICS_SESSION``, default ``~/.config/ics/session.json``, and refreshed when it expires) or
with a static token (``--token`` / ``ICS_TOKEN``). So the CLI, the console and scripts change
the mesh the same way, and every change is versioned and audited.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.table import Table

# wide when piped, so that names are never cut in scripts and logs
console = Console(width=None if sys.stdout.isatty() else 200)


def _session_path() -> Path:
    return Path(os.environ.get("ICS_SESSION") or Path.home() / ".config" / "ics" / "session.json")


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token
        self.session = None if token else self._load_session()

    @staticmethod
    def _load_session() -> dict | None:
        path = _session_path()
        return json.loads(path.read_text()) if path.exists() else None

    def _bearer(self) -> str:
        if self.token:
            return self.token
        if not self.session:
            raise click.ClickException("not logged in: run `ics login` (or give --token)")
        return self.session["access_token"]

    def _refresh(self) -> bool:
        if not self.session:
            return False
        resp = requests.post(f"{self.url}/v1/auth/refresh", timeout=10,
                             json={"refresh_token": self.session["refresh_token"]})
        if resp.status_code != 200:
            return False
        self.session.update(resp.json()["data"])
        save_session(self.session)
        return True

    def __call__(self, method: str, path: str, body: Any = None, **params) -> Any:
        try:
            resp = self._send(method, path, body, dict(params))
            if resp.status_code == 401 and not self.token and self._refresh():
                resp = self._send(method, path, body, dict(params))
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the gateway at {self.url}: {exc}")
        try:
            payload = resp.json()
        except ValueError:
            raise click.ClickException(f"{resp.status_code}: {resp.text[:200]}")
        if not isinstance(payload, dict) or not payload.get("ok"):
            err = payload.get("error", {})
            detail = f"\n{json.dumps(err['fields'], indent=2)}" if err.get("fields") else ""
            raise click.ClickException(f"{resp.status_code} {err.get('code')}: "
                                       f"{err.get('message')}{detail}")
        return payload["data"]

    def invoke(self, name: str, params: dict, *, mutating: bool = False,
               timeout: float = 60.0) -> Any:
        """A named request through the gateway, as this operator."""
        headers = {"Idempotency-Key": uuid.uuid4().hex} if mutating else {}
        return self("POST", f"/v1/invoke/{name}", params, _headers=headers, _timeout=timeout)

    def _send(self, method: str, path: str, body: Any, params: dict) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._bearer()}", **params.pop("_headers", {})}
        timeout = params.pop("_timeout", 10)
        return requests.request(method, f"{self.url}{path}", json=body, params=params,
                                headers=headers, timeout=timeout)


def save_session(session: dict) -> None:
    path = _session_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(session))
    path.chmod(0o600)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@click.group()
@click.option("--url", envvar="ICS_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option("--token", envvar="ICS_TOKEN", default="", help="a static API token")
@click.option("--json", "as_json", is_flag=True, help="print the raw JSON answer")
@click.pass_context
def main(ctx: click.Context, url: str, token: str, as_json: bool) -> None:
    """Operate the Palm Insurance invoke centre."""
    ctx.obj = {"api": Api(url, token), "json": as_json}


def _show(ctx: click.Context, data: Any) -> bool:
    if ctx.obj["json"]:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return True
    return False


@main.group()
def db() -> None:
    """The centre's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the centre's database (ICS_DB_URI) to the newest revision."""
    from invoke_centre.config import Settings
    from invoke_centre.db import make_engine
    from invoke_centre.registrar import prepare_database

    settings = Settings()
    prepare_database(settings.db_uri, make_engine(settings.db_uri))
    click.echo(f"database at {settings.db_uri.split('@')[-1]} is up to date")


@main.command()
@click.pass_context
def services(ctx: click.Context) -> None:
    """Services, their source and live instances."""
    data = ctx.obj["api"]("GET", "/v1/admin/services")
    if not _show(ctx, data):
        _table("services", ["service", "version", "source", "live", "requests"],
               [[s["name"], s["version"], s["source"], len(s["live_instances"]),
                 ", ".join(s["requests"])] for s in data])


@main.command()
@click.pass_context
def instances(ctx: click.Context) -> None:
    """Every instance seen, live or gone."""
    data = ctx.obj["api"]("GET", "/v1/admin/instances")
    if not _show(ctx, data):
        _table("instances", ["instance", "service", "version", "live", "last seen", "gone"],
               [[i["id"], i["service"], i["version"], "yes" if i["live"] else "no",
                 i["last_seen"], i["gone_at"]] for i in data])


@main.command()
@click.pass_context
def routes(ctx: click.Context) -> None:
    """The routing table."""
    data = ctx.obj["api"]("GET", "/v1/admin/routes")
    if not _show(ctx, data):
        _table(f"routes (version {data['version']})",
               ["name", "service.method", "permission", "timeout", "mutating", "enabled",
                "available", "alias of"],
               [[r["name"], f"{r['service']}.{r['method']}", r["permission"],
                 f"{r['timeout_ms']} ms", r["mutating"], r["enabled"], r["available"],
                 r["alias_of"]] for r in data["routes"]])


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def register(ctx: click.Context, manifest: Path) -> None:
    """Register the manifest in MANIFEST (JSON) for a service that does not announce itself."""
    try:
        body = json.loads(manifest.read_text())
    except ValueError as exc:
        raise click.ClickException(f"{manifest} is not JSON: {exc}")
    data = ctx.obj["api"]("POST", "/v1/admin/manifests", body)
    if not _show(ctx, data):
        click.echo("registered" if data["changed"] else "unchanged")


@main.group()
def route() -> None:
    """Change one route."""


def _patch(ctx: click.Context, name: str, **change: Any) -> None:
    data = ctx.obj["api"]("PATCH", f"/v1/admin/routes/{name}", change)
    if not _show(ctx, data):
        click.echo(f"{data['name']}: enabled={data['enabled']} timeout={data['timeout_ms']} ms "
                   f"permission={data['permission']}")


@route.command("enable")
@click.argument("name")
@click.pass_context
def route_enable(ctx: click.Context, name: str) -> None:
    _patch(ctx.parent, name, enabled=True)


@route.command("disable")
@click.argument("name")
@click.pass_context
def route_disable(ctx: click.Context, name: str) -> None:
    _patch(ctx.parent, name, enabled=False)


@route.command("set")
@click.argument("name")
@click.option("--timeout-ms", type=int)
@click.option("--permission")
@click.option("--sensitivity", type=click.Choice(["normal", "signed", "sealed"]))
@click.pass_context
def route_set(ctx: click.Context, name: str, timeout_ms: int | None, permission: str | None,
              sensitivity: str | None) -> None:
    """Change a route's deadline, permission or payload protection."""
    change = {k: v for k, v in (("timeout_ms", timeout_ms), ("permission", permission),
                                ("sensitivity", sensitivity)) if v}
    if not change:
        raise click.UsageError("give --timeout-ms, --permission or --sensitivity")
    _patch(ctx.parent, name, **change)


@main.command()
@click.argument("alias_name")
@click.argument("target", required=False)
@click.option("--remove", is_flag=True, help="remove the alias")
@click.pass_context
def alias(ctx: click.Context, alias_name: str, target: str | None, remove: bool) -> None:
    """Make ALIAS_NAME call TARGET (or remove it with --remove)."""
    api = ctx.obj["api"]
    if remove:
        api("DELETE", f"/v1/admin/aliases/{alias_name}")
        click.echo(f"removed {alias_name}")
        return
    if not target:
        raise click.UsageError("give the TARGET route")
    api("PUT", f"/v1/admin/aliases/{alias_name}", {"target": target})
    click.echo(f"{alias_name} -> {target}")


@main.command()
@click.option("--since", type=int, default=0, help="changes after this version")
@click.pass_context
def changes(ctx: click.Context, since: int) -> None:
    """The versioned log of routing-table changes."""
    data = ctx.obj["api"]("GET", "/v1/admin/changes", since=since)
    if not _show(ctx, data):
        _table("changes", ["version", "at", "actor", "kind", "target", "detail"],
               [[c["version"], c["at"], c["actor"], c["kind"], c["target"],
                 json.dumps(c["detail"], ensure_ascii=False)] for c in data])


@main.command()
@click.pass_context
def bus(ctx: click.Context) -> None:
    """Queues and exchanges of the mesh: depth, consumers, rates, dead letters."""
    data = ctx.obj["api"]("GET", "/v1/ops/bus")
    if _show(ctx, data):
        return
    _table(f"queues on vhost {data['vhost']}",
           ["queue", "role", "service", "ready", "unacked", "consumers", "in/s", "out/s",
            "dead", "alerts"],
           [[q["name"], q["role"], q["service"], q["ready"], q["unacked"], q["consumers"],
             f"{q['publish_rate']:.1f}", f"{q['deliver_rate']:.1f}", q["dead_letters"],
             "; ".join(q["alerts"])] for q in data["queues"]])
    _table("exchanges", ["exchange", "type", "in/s", "out/s"],
           [[x["name"], x["type"], f"{x['publish_in_rate']:.1f}",
             f"{x['publish_out_rate']:.1f}"] for x in data["exchanges"]])
    t = data["totals"]
    console.print(f"{t['queues']} queues, {t['ready']} ready, {t['unacked']} unacked, "
                  f"{t['dead_letters']} dead letters, {t['alerts']} alerts")


def _audit_filters(user: str | None, types: tuple[str, ...], since: str | None,
                   until: str | None, request_id: str | None, named_request: str | None,
                   outcome: str | None) -> dict:
    params = {"user_id": user, "from": since, "to": until, "request_id": request_id,
              "named_request": named_request, "outcome": outcome}
    if types:
        params["type"] = list(types)
    return {k: v for k, v in params.items() if v is not None}


def _audit_filter_options(fn):
    for opt in reversed([
        click.option("--user", help="user id"),
        click.option("--type", "types", multiple=True, help="event type (repeatable)"),
        click.option("--from", "since", help="ISO 8601 with a zone, inclusive"),
        click.option("--to", "until", help="ISO 8601 with a zone, exclusive"),
        click.option("--request-id"),
        click.option("--named-request"),
        click.option("--outcome", type=click.Choice(["success", "failure", "refused"])),
    ]):
        fn = opt(fn)
    return fn


@main.group()
def audit() -> None:
    """The audit trail (auditors: audit:read; the policy: audit:admin)."""


@audit.command("search")
@_audit_filter_options
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--cursor", help="next_cursor of the previous page")
@click.option("--asc", is_flag=True, help="oldest first")
@click.pass_context
def audit_search(ctx: click.Context, limit: int, cursor: str | None, asc: bool,
                 **filters: Any) -> None:
    """Search audit records (newest first)."""
    params = {**_audit_filters(**filters), "limit": limit, "order": "asc" if asc else "desc"}
    if cursor:
        params["cursor"] = cursor
    data = ctx.obj["api"].invoke("audit.search", params)
    if not _show(ctx, data):
        _table("audit records", ["seq", "at", "type", "user", "named request", "object",
                                 "outcome", "source"],
               [[r["seq"], r["at"], r["type"], r["who"]["user_id"],
                 r["where"]["named_request"], r["object"], r["outcome"], r["source"]]
                for r in data["items"]])
        if data["next_cursor"]:
            console.print(f"more: --cursor {data['next_cursor']}")


@audit.command("get")
@click.argument("seq_or_event_id")
@click.pass_context
def audit_get(ctx: click.Context, seq_or_event_id: str) -> None:
    """One record, by seq or event id."""
    params = ({"seq": int(seq_or_event_id)} if seq_or_event_id.isdigit()
              else {"event_id": seq_or_event_id})
    click.echo(json.dumps(ctx.obj["api"].invoke("audit.get", params), indent=2, ensure_ascii=False))


@audit.command("export")
@_audit_filter_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV file to write (every page)")
@click.pass_context
def audit_export(ctx: click.Context, out: Path, **filters: Any) -> None:
    """Export matching records as CSV, following every page."""
    params, rows, first = {**_audit_filters(**filters), "limit": 20000}, 0, True
    with out.open("w", encoding="utf-8", newline="") as f:
        while True:
            data = ctx.obj["api"].invoke("audit.export", params, timeout=120)
            text = data["csv"] if first else data["csv"].split("\r\n", 1)[1]
            f.write(text)
            rows, first = rows + data["rows"], False
            if not data["next_cursor"]:
                break
            params["cursor"] = data["next_cursor"]
    click.echo(f"{rows} records written to {out}")


@audit.command("verify")
@click.option("--since-seq", type=int, help="from the last checkpoint before this seq")
@click.pass_context
def audit_verify(ctx: click.Context, since_seq: int | None) -> None:
    """Re-walk the hash chain and the signed checkpoints."""
    data = ctx.obj["api"].invoke("audit.verify", {"since_seq": since_seq} if since_seq else {},
                   timeout=120)
    if not _show(ctx, data):
        if data["ok"]:
            click.echo(f"ok: records {data['from_seq']}..{data['last_seq']} verified, "
                       f"{data['checkpoints']} checkpoints, {data['took_ms']} ms")
        else:
            bad = data["first_bad"]
            raise click.ClickException(f"TAMPERED at seq {bad['seq']} ({bad['kind']}): "
                                       f"{bad['message']}")


@audit.command("status")
@click.pass_context
def audit_status(ctx: click.Context) -> None:
    """Records, chain head, policy version, ingest figures."""
    click.echo(json.dumps(ctx.obj["api"].invoke("audit.status", {}), indent=2))


@audit.group("policy")
def audit_policy() -> None:
    """What is logged beyond the always-audited kinds."""


@audit_policy.command("get")
@click.pass_context
def audit_policy_get(ctx: click.Context) -> None:
    data = ctx.obj["api"].invoke("audit.policy.get", {})
    if not _show(ctx, data):
        console.print(f"version {data['version']} (set by {data['set_by'] or '-'} at "
                      f"{data['set_at'] or '-'}); always kept: "
                      f"{', '.join(data['always_audited'])}")
        click.echo(json.dumps({"rules": data["rules"]}, indent=2))


@audit_policy.command("set")
@click.argument("rules_file", type=click.File("r"))
@click.option("--note", default="")
@click.option("--expected-version", type=int)
@click.pass_context
def audit_policy_set(ctx: click.Context, rules_file, note: str,
                     expected_version: int | None) -> None:
    """Set the policy from a JSON file ({"rules": [...]} or the list itself; - for stdin)."""
    rules = json.load(rules_file)
    params = {"rules": rules["rules"] if isinstance(rules, dict) else rules, "note": note}
    if expected_version is not None:
        params["expected_version"] = expected_version
    data = ctx.obj["api"].invoke("audit.policy.set", params, mutating=True)
    if not _show(ctx, data):
        click.echo(f"policy version {data['version']} in force (audit record "
                   f"{data['record_seq']})")


# --- identity ------------------------------------------------------------------------------------
@main.command()
@click.option("--phone", required=True, help="the administrator's mobile number")
@click.option("--name", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="ICS_BOOTSTRAP_PASSWORD")
@click.option("--branch-code", default="1", show_default=True, help="the head office's code")
@click.option("--branch-name", default="Head office", show_default=True)
def bootstrap(phone: str, name: str, password: str, branch_code: str, branch_name: str) -> None:
    """Create the first administrator (and a console terminal) in an empty centre."""
    from sqlalchemy.orm import sessionmaker

    from invoke_centre import identity
    from invoke_centre.config import Settings
    from invoke_centre.db import make_engine
    from invoke_centre.registrar import prepare_database

    settings = Settings()
    engine = make_engine(settings.db_uri)
    prepare_database(settings.db_uri, engine)
    with sessionmaker(bind=engine)() as session:
        try:
            result = identity.bootstrap_admin(session, phone=phone, name=name, password=password,
                                              branch_code=branch_code, branch_name=branch_name)
            out = {"user_id": result.user.id, "terminal_id": result.terminal_id}
            session.commit()
        except identity.IdentityError as err:
            raise click.ClickException(f"{err} {json.dumps(err.fields, ensure_ascii=False)}")
    click.echo(json.dumps(out))


@main.command()
@click.option("--phone", required=True)
@click.option("--terminal", "terminal_id", required=True, envvar="ICS_TERMINAL")
@click.option("--password", prompt=True, hide_input=True, envvar="ICS_PASSWORD")
@click.pass_context
def login(ctx: click.Context, phone: str, terminal_id: str, password: str) -> None:
    """Log in as an operator from a console terminal; the session is saved for later commands."""
    api: Api = ctx.obj["api"]
    resp = requests.post(f"{api.url}/v1/auth/login", timeout=10, json={
        "phone": phone, "password": password, "terminal_id": terminal_id})
    if resp.status_code != 200:
        raise click.ClickException(f"{resp.status_code}: {resp.json()['error']['message']}")
    save_session(resp.json()["data"])
    click.echo("logged in")


@main.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """End the saved session."""
    ctx.obj["api"]("POST", "/v1/auth/logout", {})
    _session_path().unlink(missing_ok=True)
    click.echo("logged out")


@main.command()
@click.pass_context
def token(ctx: click.Context) -> None:
    """Print the current access token (for curl), refreshing the session first."""
    api: Api = ctx.obj["api"]
    api("GET", "/v1/auth/me")
    click.echo(api._bearer())


@main.command()
@click.pass_context
def users(ctx: click.Context) -> None:
    """Users within your reach."""
    data = ctx.obj["api"]("GET", "/v1/admin/users")
    if not _show(ctx, data):
        _table("users", ["id", "name", "phone", "kind", "branch", "status"],
               [[u["id"], u["name"], u["phone"], u["kind"], u["branch_code"], u["status"]]
                for u in data])


@main.group()
def user() -> None:
    """Manage one user."""


@user.command("add")
@click.option("--phone", required=True)
@click.option("--name", required=True)
@click.option("--kind", required=True, help="agent, customer_manager, operator, auditor, …")
@click.option("--branch", "branch_code")
@click.option("--pin")
@click.option("--password")
@click.option("--operator-level", type=int)
@click.pass_context
def user_add(ctx: click.Context, **body: Any) -> None:
    data = ctx.obj["api"]("POST", "/v1/admin/users", {k: v for k, v in body.items() if v})
    click.echo(json.dumps(data, ensure_ascii=False))


@user.command("grant")
@click.argument("user_id")
@click.argument("role")
@click.argument("scope")
@click.option("--line", help="life or property")
@click.pass_context
def user_grant(ctx: click.Context, user_id: str, role: str, scope: str, line: str | None) -> None:
    """Give USER_ID the ROLE within SCOPE (a branch code, * or self)."""
    data = ctx.obj["api"]("POST", f"/v1/admin/users/{user_id}/grants",
                          {"role": role, "scope": scope, "line": line})
    click.echo(json.dumps(data))


@user.command("logout")
@click.argument("user_id")
@click.pass_context
def user_logout(ctx: click.Context, user_id: str) -> None:
    """Force USER_ID to log in again, on every terminal."""
    click.echo(json.dumps(ctx.obj["api"]("POST", f"/v1/admin/users/{user_id}/logout", {})))


@user.command("disable")
@click.argument("user_id")
@click.pass_context
def user_disable(ctx: click.Context, user_id: str) -> None:
    click.echo(json.dumps(ctx.obj["api"]("PATCH", f"/v1/admin/users/{user_id}",
                                         {"status": "disabled"}), ensure_ascii=False))


@main.command("role")
@click.argument("name")
@click.argument("permissions", nargs=-1, required=True)
@click.option("--description", default="")
@click.pass_context
def role_set(ctx: click.Context, name: str, permissions: tuple[str, ...],
             description: str) -> None:
    """Define role NAME as PERMISSIONS (replacing what it had)."""
    click.echo(json.dumps(ctx.obj["api"]("POST", "/v1/admin/roles", {
        "name": name, "permissions": list(permissions), "description": description})))


@main.command("branch")
@click.argument("code")
@click.argument("name")
@click.option("--kind", required=True, help="province, prefecture, county, outlet")
@click.option("--parent", "parent_code")
@click.pass_context
def branch_add(ctx: click.Context, code: str, name: str, kind: str,
               parent_code: str | None) -> None:
    """Add a branch; its code starts with its parent's."""
    click.echo(json.dumps(ctx.obj["api"]("POST", "/v1/admin/branches", {
        "code": code, "name": name, "kind": kind, "parent_code": parent_code}),
        ensure_ascii=False))


@main.command()
@click.pass_context
def terminals(ctx: click.Context) -> None:
    """Every terminal, its status and users."""
    data = ctx.obj["api"]("GET", "/v1/admin/terminals")
    if not _show(ctx, data):
        _table("terminals", ["id", "class", "status", "users", "imei", "key version"],
               [[t["id"], t["terminal_class"], t["status"], ", ".join(t["users"]), t["imei"],
                 t["key_version"]] for t in data])


@main.group()
def terminal() -> None:
    """Manage one terminal."""


@terminal.command("enrol")
@click.option("--user", "user_ids", multiple=True, required=True)
@click.option("--class", "terminal_class", default="phone", show_default=True)
@click.option("--imei")
@click.option("--imsi")
@click.pass_context
def terminal_enrol(ctx: click.Context, user_ids: tuple[str, ...], terminal_class: str,
                   imei: str | None, imsi: str | None) -> None:
    """Enrol a terminal; give the printed enrolment code to the device."""
    click.echo(json.dumps(ctx.obj["api"]("POST", "/v1/admin/terminals", {
        "user_ids": list(user_ids), "terminal_class": terminal_class, "imei": imei,
        "imsi": imsi})))


for _action in ("lost", "deregister"):
    @terminal.command(_action)
    @click.argument("terminal_id")
    @click.pass_context
    def _terminal_status(ctx: click.Context, terminal_id: str, _action: str = _action) -> None:
        click.echo(json.dumps(ctx.obj["api"]("POST",
                                             f"/v1/admin/terminals/{terminal_id}/{_action}",
                                             {})))


@main.command("rotate-keys")
@click.option("--use", type=click.Choice(["sig", "enc"]), default="sig", show_default=True)
@click.pass_context
def rotate_keys(ctx: click.Context, use: str) -> None:
    """A new signing (or encryption) key for the centre; the old one fades out."""
    click.echo(json.dumps(ctx.obj["api"]("POST", "/v1/admin/keys/rotate", {"use": use})))


if __name__ == "__main__":
    sys.exit(main())
