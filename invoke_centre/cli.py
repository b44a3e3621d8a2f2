"""``ics``: the operators' command-line tool.

Everything but ``ics db upgrade`` goes through the gateway's admin API
(``--url`` / ``ICS_URL``, ``--token`` / ``ICS_OPERATOR_TOKEN``), so the CLI,
the console and scripts change the mesh the same way and every change is
versioned.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.table import Table

# wide when piped, so that names are never cut in scripts and logs
console = Console(width=None if sys.stdout.isatty() else 200)


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def __call__(self, method: str, path: str, body: Any = None, **params) -> Any:
        try:
            resp = requests.request(method, f"{self.url}{path}", json=body, params=params,
                                    headers={"Authorization": f"Bearer {self.token}"},
                                    timeout=10)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the gateway at {self.url}: {exc}")
        try:
            payload = resp.json()
        except ValueError:
            raise click.ClickException(f"{resp.status_code}: {resp.text[:200]}")
        if not payload.get("ok"):
            err = payload.get("error", {})
            detail = f"\n{json.dumps(err['fields'], indent=2)}" if err.get("fields") else ""
            raise click.ClickException(f"{resp.status_code} {err.get('code')}: "
                                       f"{err.get('message')}{detail}")
        return payload["data"]


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@click.group()
@click.option("--url", envvar="ICS_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option("--token", envvar="ICS_OPERATOR_TOKEN", default="")
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
    from invoke_centre.db import make_engine, upgrade
    from invoke_centre.registrar import MIGRATIONS

    settings = Settings()
    upgrade(settings.db_uri, MIGRATIONS, engine=make_engine(settings.db_uri))
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
@click.pass_context
def route_set(ctx: click.Context, name: str, timeout_ms: int | None,
              permission: str | None) -> None:
    change = {k: v for k, v in (("timeout_ms", timeout_ms), ("permission", permission)) if v}
    if not change:
        raise click.UsageError("give --timeout-ms or --permission")
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


if __name__ == "__main__":
    sys.exit(main())
