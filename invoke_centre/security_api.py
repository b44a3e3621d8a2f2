"""HTTP endpoints of identity and terminal security: login, tokens, terminals, users, roles,
branches and keys. Mixed into the gateway (``gateway.Gateway``), whose helpers they use.

Admin endpoints need an ``ics:*`` permission by area — ``ics:identity`` (branches, roles,
users, grants), ``ics:terminals``, ``ics:keys`` — and, for a user or terminal, a grant whose
scope covers that user's branch: an operator of ``5301`` manages Kunming's people only.
"""

from __future__ import annotations

import time
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from invoke_centre import identity, login, terminals, tokens
from invoke_centre.models import Terminal, User
from invoke_centre.protection import MAX_AGE_S

RULES = [
    Rule("/v1/auth/challenge", methods=["POST"], endpoint="auth_challenge"),
    Rule("/v1/auth/login", methods=["POST"], endpoint="auth_login"),
    Rule("/v1/auth/refresh", methods=["POST"], endpoint="auth_refresh"),
    Rule("/v1/auth/logout", methods=["POST"], endpoint="auth_logout"),
    Rule("/v1/auth/secrets", methods=["POST"], endpoint="auth_secrets"),
    Rule("/v1/auth/keys", methods=["GET"], endpoint="auth_keys"),
    Rule("/v1/auth/me", methods=["GET"], endpoint="auth_me"),
    Rule("/v1/terminals/register", methods=["POST"], endpoint="terminal_register"),
    Rule("/v1/terminals/rotate", methods=["POST"], endpoint="terminal_rotate"),
    Rule("/v1/admin/branches", methods=["GET", "POST"], endpoint="admin_branches"),
    Rule("/v1/admin/roles", methods=["GET", "POST"], endpoint="admin_roles"),
    Rule("/v1/admin/users", methods=["GET", "POST"], endpoint="admin_users"),
    Rule("/v1/admin/users/<user_id>", methods=["GET", "PATCH"], endpoint="admin_user"),
    Rule("/v1/admin/users/<user_id>/grants", methods=["POST"], endpoint="admin_user_grants"),
    Rule("/v1/admin/users/<user_id>/grants/<int:grant_id>", methods=["DELETE"],
         endpoint="admin_user_grant"),
    Rule("/v1/admin/users/<user_id>/logout", methods=["POST"], endpoint="admin_user_logout"),
    Rule("/v1/admin/users/<user_id>/secrets", methods=["POST"], endpoint="admin_user_secrets"),
    Rule("/v1/admin/terminals", methods=["GET", "POST"], endpoint="admin_terminals"),
    Rule("/v1/admin/terminals/<terminal_id>/<any(lost, deregister, bind, unbind):action>",
         methods=["POST"], endpoint="admin_terminal"),
    Rule("/v1/admin/terminal-classes/<name>", methods=["PUT"], endpoint="admin_terminal_class"),
    Rule("/v1/admin/keys/rotate", methods=["POST"], endpoint="admin_keys_rotate"),
]


def _user_out(u: User, grants: list | None = None) -> dict[str, Any]:
    out = {"id": u.id, "phone": u.phone[:3] + "****" + u.phone[-4:], "name": u.name,
           "kind": u.kind, "branch_code": u.branch_code, "operator_level": u.operator_level,
           "status": u.status, "has_pin": u.pin_hash is not None,
           "has_password": u.password_hash is not None}
    if grants is not None:
        out["grants"] = [{"id": g.id, "role": g.role, "scope": g.scope, "line": g.line}
                         for g in grants]
    return out


def _terminal_out(t: Terminal, users: list[str]) -> dict[str, Any]:
    return {"id": t.id, "terminal_class": t.terminal_class, "status": t.status, "imei": t.imei,
            "imsi": t.imsi, "key_version": t.key_version, "users": users,
            "has_encryption_key": t.enc_jwk is not None,
            "status_changed_at": t.status_changed_at.isoformat()}


class SecurityApi:
    """Endpoints; ``self`` is the gateway."""

    # --- login and tokens -----------------------------------------------------------------
    def on_auth_challenge(self, request: Request, rid: str) -> Response:
        body = self._body(request)
        with self.centre.sessions() as session:
            out = login.challenge(session, body.get("terminal_id"))
            session.commit()
        return self._ok(out, rid)

    def on_auth_login(self, request: Request, rid: str) -> Response:
        from invoke_centre.gateway import ApiError

        body = self._body(request)
        events = login.Events()
        centre = self.centre
        with centre.sessions() as session:
            try:
                out = login.login(session, centre.security, phone=body.get("phone"),
                                  pin=body.get("pin"), password=body.get("password"),
                                  terminal_id=body.get("terminal_id"), proof=body.get("proof"),
                                  imei=body.get("imei"), imsi=body.get("imsi"), events=events)
                error = None
            except login.LoginFailed as exc:
                error = exc
            session.commit()
        self._publish(events, rid, "auth.login")
        if error is not None:
            if error.locked:
                raise ApiError(429, "locked", "too many failed attempts; try again later")
            raise ApiError(401, "login_failed", "the phone number, secrets or terminal are "
                           "not right")
        return self._ok(out, rid)

    def on_auth_refresh(self, request: Request, rid: str) -> Response:
        from invoke_centre.gateway import ApiError

        body = self._body(request)
        events = login.Events()
        with self.centre.sessions() as session:
            try:
                out, error = login.refresh(session, self.centre.security,
                                           body.get("refresh_token"), events), None
            except login.RefreshFailed as exc:
                out, error = None, exc
            session.commit()
        self._publish(events, rid, "auth.refresh")
        if error is not None:
            self.centre.security.refresh()
            raise ApiError(401, "refresh_failed", "the refresh token is not valid")
        return self._ok(out, rid)

    def on_auth_logout(self, request: Request, rid: str) -> Response:
        principal, claims = self._session_claims(request)
        with self.centre.sessions() as session:
            login.revoke_family(session, claims["sid"])
            session.commit()
        self.centre.security.refresh()
        self._audit("logout", principal, rid, operation="auth.logout")
        return self._ok({"logged_out": True}, rid)

    def on_auth_secrets(self, request: Request, rid: str) -> Response:
        from invoke_centre.gateway import ApiError

        principal, _claims = self._session_claims(request)
        body = self._body(request)
        events = login.Events()
        with self.centre.sessions() as session:
            try:
                login.change_secrets(session, principal.user_id,
                                     current_pin=body.get("current_pin"),
                                     current_password=body.get("current_password"),
                                     new_pin=body.get("new_pin"),
                                     new_password=body.get("new_password"), events=events)
                error = None
            except login.LoginFailed as exc:
                error = exc
            except identity.IdentityError as exc:
                raise ApiError(400, "invalid_change", str(exc), exc.fields)
            session.commit()
        self._publish(events, rid, "auth.secrets")
        if error is not None:
            if error.locked:
                raise ApiError(429, "locked", "too many failed attempts; try again later")
            raise ApiError(401, "login_failed", "the current PIN or password is not right")
        self._audit("data_change", principal, rid, operation="auth.secrets",
                    object_=f"user:{principal.user_id}",
                    detail={"changed": [k for k in ("new_pin", "new_password") if k in body]})
        return self._ok({"changed": True}, rid)

    def on_auth_keys(self, request: Request, rid: str) -> Response:
        view = self.centre.security
        return Response(self._dumps({"keys": view.jwks, "enc_kid": view.current_enc_kid}),
                        mimetype="application/jwk-set+json")

    def on_auth_me(self, request: Request, rid: str) -> Response:
        p = self._principal(request)
        return self._ok({"user_id": p.user_id, "roles": list(p.roles), "branch": p.branch,
                         "terminal_id": p.terminal_id, "permissions": sorted(p.permissions),
                         "grants": [str(g) for g in p.grants]}, rid)

    def _session_claims(self, request: Request):
        from invoke_centre.gateway import ApiError

        principal = self._principal(request)
        token = (request.headers.get("Authorization") or "")[7:].strip()
        try:
            claims = self.centre.security.verify_access(token)
        except tokens.TokenError:
            raise ApiError(400, "not_a_session", "this needs a login session's access token")
        return principal, claims

    # --- terminals, from the device -----------------------------------------------------------
    def on_terminal_register(self, request: Request, rid: str) -> Response:
        body = self._body(request)
        t = self._write(lambda s: terminals.register(
            s, terminal_id=body.get("terminal_id"), enrolment_code=body.get("enrolment_code"),
            sig_jwk=body.get("sig_jwk"), enc_jwk=body.get("enc_jwk")), rid=rid)
        return self._ok({"terminal_id": t.id, "status": t.status,
                         "key_version": t.key_version}, rid)

    def on_terminal_rotate(self, request: Request, rid: str) -> Response:
        """New device keys, proven by a JWS of the current key over the new public keys."""
        from invoke_centre.gateway import ApiError

        principal = self._principal(request)
        terminal = self.centre.security.terminal(principal.terminal_id)
        body = self._body(request)
        try:
            payload = login.verify_device_jws(body.get("proof"),
                                              terminal.sig_jwk if terminal else None)
            iat = payload.get("iat")
            if not isinstance(iat, (int, float)) or abs(time.time() - iat) > MAX_AGE_S:
                raise ValueError("the rotation proof is too old or from the future")
        except ValueError as exc:
            self._audit("abnormal", principal, rid, operation="terminals.rotate",
                        outcome="refused", detail={"reason": str(exc)})
            raise ApiError(401, "bad_signature", "the rotation must be signed by the current "
                           "key, within five minutes")
        t = self._write(lambda s: terminals.rotate_keys(
            s, terminals.get_terminal(s, principal.terminal_id), sig_jwk=payload.get("sig_jwk"),
            enc_jwk=payload.get("enc_jwk")), audit=(principal, "terminals.rotate",
                                                    f"terminal:{principal.terminal_id}", None),
            rid=rid)
        return self._ok({"terminal_id": t.id, "key_version": t.key_version}, rid)

    # --- admin: branches, roles, users -------------------------------------------------------
    def on_admin_branches(self, request: Request, rid: str) -> Response:
        admin = self._admin(request, "ics:identity", scoped=True)
        if request.method == "GET":
            with self.centre.sessions() as session:
                rows = identity.list_branches(session)
            return self._ok([{"code": b.code, "name": b.name, "parent_code": b.parent_code,
                              "kind": b.kind} for b in rows], rid)
        body = self._body(request)
        self._need_scope(admin, "ics:identity", body.get("parent_code") or "")
        b = self._write(lambda s: identity.create_branch(
            s, code=body.get("code"), name=body.get("name"), kind=body.get("kind"),
            parent_code=body.get("parent_code")), audit=(admin, "admin.branch.create",
                                                         f"branch:{body.get('code')}", body),
            rid=rid)
        return self._ok({"code": b.code, "name": b.name}, rid, 201)

    def on_admin_roles(self, request: Request, rid: str) -> Response:
        admin = self._admin(request, "ics:identity", scoped=request.method == "GET")
        if request.method == "GET":
            with self.centre.sessions() as session:
                rows = identity.list_roles(session)
            return self._ok([{"name": r.name, "permissions": r.permissions,
                              "description": r.description} for r in rows], rid)
        body = self._body(request)
        r = self._write(lambda s: identity.set_role(
            s, name=body.get("name"), permissions=body.get("permissions"),
            description=body.get("description") or ""),
            audit=(admin, "admin.role.set", f"role:{body.get('name')}", body), rid=rid)
        return self._ok({"name": r.name, "permissions": r.permissions}, rid, 201)

    def on_admin_users(self, request: Request, rid: str) -> Response:
        admin = self._admin(request, "ics:identity", scoped=True)
        if request.method == "GET":
            prefixes = self._prefixes(admin, "ics:identity")
            with self.centre.sessions() as session:
                rows = identity.list_users(session, branch_prefixes=prefixes)
            return self._ok([_user_out(u) for u in rows], rid)
        body = self._body(request)
        self._need_scope(admin, "ics:identity", body.get("branch_code"))
        u = self._write(lambda s: identity.create_user(
            s, phone=body.get("phone"), name=body.get("name"), kind=body.get("kind"),
            branch_code=body.get("branch_code"), pin=body.get("pin"),
            password=body.get("password"), operator_level=body.get("operator_level")),
            audit=(admin, "admin.user.create", lambda u: f"user:{u.id}", body), rid=rid)
        return self._ok(_user_out(u, []), rid, 201)

    def _user_in_scope(self, admin, user_id: str, permission: str = "ics:identity") -> None:
        """404 unless the user exists within the operator's reach for ``permission``."""
        from invoke_centre.gateway import ApiError

        with self.centre.sessions() as session:
            user = session.get(User, user_id)
            if user is None or not admin.may_at(permission, branch=user.branch_code):
                raise ApiError(404, "not_found", f"no user {user_id}")

    def on_admin_user(self, request: Request, rid: str, user_id: str) -> Response:
        admin = self._admin(request, "ics:identity", scoped=True)
        self._user_in_scope(admin, user_id)
        if request.method == "GET":
            with self.centre.sessions() as session:
                u = identity.get_user(session, user_id)
                return self._ok(_user_out(u, identity.grants_of(session, user_id)), rid)
        body = self._body(request)

        def change(s):
            u = identity.get_user(s, user_id)
            if "status" in body:
                identity.set_status(s, u, body["status"])
            if "name" in body:
                u.name = str(body["name"])[:120]
            if "branch_code" in body:
                self._need_scope(admin, "ics:identity", body["branch_code"])
                u.branch_code = body["branch_code"]
                identity.bump(s, "user_branch", u.id)
            return u

        u = self._write(change, audit=(admin, "admin.user.change", f"user:{user_id}", body),
                        rid=rid)
        return self._ok(_user_out(u), rid)

    def on_admin_user_grants(self, request: Request, rid: str, user_id: str) -> Response:
        from invoke_centre.gateway import ApiError
        from invoke_centre.models import Role

        admin = self._admin(request, "ics:identity", scoped=True)
        self._user_in_scope(admin, user_id)
        body = self._body(request)
        if user_id == admin.user_id:
            raise ApiError(403, "forbidden", "nobody grants themselves a role")
        scope, line = body.get("scope"), body.get("line")
        with self.centre.sessions() as session:
            role = session.get(Role, body.get("role")) if isinstance(body.get("role"), str) \
                else None
            target = session.get(User, user_id)
            permissions = list(role.permissions) if role else []
            where = target.branch_code if scope == "self" else scope
        # no escalation: every permission of the role must be the operator's own over the scope
        for perm in permissions:
            held = any(g.grants(perm) and (g.line is None or g.line == line) and (
                g.scope == "*" if where == "*" else
                isinstance(where, str) and g.covers(branch=where, owner=None, user_id=None))
                for g in admin.grants)
            if not held:
                raise ApiError(403, "forbidden", f"you cannot grant {perm} over "
                               f"{'every branch' if where == '*' else f'branch {where}'}")
        g = self._write(lambda s: identity.add_grant(
            s, identity.get_user(s, user_id), role=body.get("role"), scope=scope, line=line),
            audit=(admin, "admin.grant.add", f"user:{user_id}", body), rid=rid)
        return self._ok({"id": g.id, "role": g.role, "scope": g.scope, "line": g.line}, rid, 201)

    def on_admin_user_grant(self, request: Request, rid: str, user_id: str,
                            grant_id: int) -> Response:
        admin = self._admin(request, "ics:identity", scoped=True)
        self._user_in_scope(admin, user_id)
        self._write(lambda s: identity.remove_grant(s, identity.get_user(s, user_id), grant_id),
                    audit=(admin, "admin.grant.remove", f"user:{user_id}", {"grant": grant_id}),
                    rid=rid)
        return self._ok({"removed": grant_id}, rid)

    def on_admin_user_logout(self, request: Request, rid: str, user_id: str) -> Response:
        admin = self._admin(request, "ics:identity", scoped=True)
        self._user_in_scope(admin, user_id)
        n = self._write(lambda s: identity.force_logout(s, identity.get_user(s, user_id)),
                        audit=(admin, "admin.user.logout", f"user:{user_id}", None), rid=rid)
        return self._ok({"user_id": user_id, "refresh_tokens_revoked": n}, rid)

    def on_admin_user_secrets(self, request: Request, rid: str, user_id: str) -> Response:
        admin = self._admin(request, "ics:identity", scoped=True)
        self._user_in_scope(admin, user_id)
        body = self._body(request)
        self._write(lambda s: identity.set_secrets(s, identity.get_user(s, user_id),
                                                   pin=body.get("pin"),
                                                   password=body.get("password")),
                    audit=(admin, "admin.user.secrets", f"user:{user_id}", body), rid=rid)
        return self._ok({"changed": True}, rid)

    # --- admin: terminals and keys -----------------------------------------------------------
    def on_admin_terminals(self, request: Request, rid: str) -> Response:
        admin = self._admin(request, "ics:terminals", scoped=True)
        if request.method == "GET":
            with self.centre.sessions() as session:
                branches = {u.id: u.branch_code for u in session.query(User)}
                rows = [(t, terminals.users_of(session, t.id))
                        for t in terminals.list_terminals(session)]
            # an operator sees the terminals of the people within their reach
            rows = [(t, users) for t, users in rows
                    if any(admin.may_at("ics:terminals", branch=branches.get(u)) for u in users)]
            return self._ok([_terminal_out(t, users) for t, users in rows], rid)
        body = self._body(request)
        for user_id in body.get("user_ids") or []:
            if isinstance(user_id, str):
                self._user_in_scope(admin, user_id, "ics:terminals")
        t, code = self._write(lambda s: terminals.enrol(
            s, terminal_class=body.get("terminal_class", "phone"), imei=body.get("imei"),
            imsi=body.get("imsi"), user_ids=body.get("user_ids")),
            audit=(admin, "admin.terminal.enrol", lambda r: f"terminal:{r[0].id}", body),
            rid=rid)
        return self._ok({"terminal_id": t.id, "enrolment_code": code,
                         "terminal_class": t.terminal_class}, rid, 201)

    def on_admin_terminal(self, request: Request, rid: str, terminal_id: str,
                          action: str) -> Response:
        from invoke_centre.gateway import ApiError

        admin = self._admin(request, "ics:terminals", scoped=True)
        body = self._body(request)
        with self.centre.sessions() as session:
            if session.get(Terminal, terminal_id) is None:
                raise ApiError(404, "not_found", f"no terminal {terminal_id}")
            bound = terminals.users_of(session, terminal_id)
        for user_id in bound:
            self._user_in_scope(admin, user_id, "ics:terminals")

        def act(s):
            t = terminals.get_terminal(s, terminal_id)
            if action in ("lost", "deregister"):
                terminals.set_status(s, t, "lost" if action == "lost" else "deregistered")
            elif action == "bind":
                terminals.bind(s, t, body.get("user_id"))
            else:
                terminals.unbind(s, t, body.get("user_id"))
            return t, terminals.users_of(s, t.id)

        t, users = self._write(act, audit=(admin, f"admin.terminal.{action}",
                                           f"terminal:{terminal_id}", body), rid=rid)
        return self._ok(_terminal_out(t, users), rid)

    def on_admin_terminal_class(self, request: Request, rid: str, name: str) -> Response:
        admin = self._admin(request, "ics:terminals")
        body = self._body(request)
        c = self._write(lambda s: terminals.set_class(
            s, name=name, login_items=body.get("login_items"),
            min_sensitivity=body.get("min_sensitivity", "normal")),
            audit=(admin, "admin.terminal_class.set", f"terminal_class:{name}", body), rid=rid)
        return self._ok({"name": c.name, "login_items": c.login_items,
                         "min_sensitivity": c.min_sensitivity}, rid)

    def on_admin_keys_rotate(self, request: Request, rid: str) -> Response:
        admin = self._admin(request, "ics:keys")
        body = self._body(request)
        k = self._write(lambda s: tokens.rotate_keys(s, body.get("use", "sig")),
                        audit=(admin, "admin.keys.rotate", None, body), rid=rid)
        return self._ok({"kid": k.kid, "use": k.use}, rid, 201)

    # --- helpers ---------------------------------------------------------------------------------
    def _prefixes(self, admin, permission: str) -> tuple[str, ...] | None:
        grants = [g for g in admin.grants if g.grants(permission)]
        if any(g.scope == "*" for g in grants):
            return None
        return tuple(g.scope for g in grants if g.scope != "self")

    def _need_scope(self, admin, permission: str, branch: str | None) -> None:
        """``branch`` None means mesh-wide: only an everywhere grant will do."""
        from invoke_centre.gateway import ApiError

        ok = admin.may_at(permission, branch="\x00" if branch is None else branch) \
            if branch is not None else any(g.grants(permission) and g.scope == "*"
                                           for g in admin.grants)
        if not ok:
            raise ApiError(403, "forbidden", f"{permission} does not reach "
                           f"{'every branch' if branch is None else 'branch ' + str(branch)}")
