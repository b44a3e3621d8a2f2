"""A Python client of the invoke centre: what a phone does, for tests, the CLI and benchmarks.

    device = DeviceKeys.generate()                      # made on the device, never sent
    c = Client("http://127.0.0.1:8080", device=device)
    c.register(terminal_id, enrolment_code)             # sends only the public keys
    c.login("13800000001", pin="845302", password="…")  # signs the server's nonce
    c.invoke("customer.search", {"name": "zs"})         # normal, signed or sealed as needed

The formats are in ``docs/phone-clients.md``; everything is standard JOSE.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from joserfc import jwe, jws
from joserfc.jwk import ECKey, OKPKey

JWE_ALGS = ["ECDH-ES+A256KW", "A256GCM"]


@dataclass
class DeviceKeys:
    sig: OKPKey | ECKey
    enc: ECKey | OKPKey

    @classmethod
    def generate(cls, sig_curve: str = "Ed25519") -> "DeviceKeys":
        sig = OKPKey.generate_key("Ed25519") if sig_curve == "Ed25519" \
            else ECKey.generate_key("P-256")
        return cls(sig=sig, enc=ECKey.generate_key("P-256"))

    @property
    def sig_alg(self) -> str:
        return "EdDSA" if isinstance(self.sig, OKPKey) else "ES256"

    def public(self) -> dict[str, dict]:
        return {"sig_jwk": self.sig.as_dict(private=False),
                "enc_jwk": self.enc.as_dict(private=False)}

    def sign(self, payload: dict[str, Any]) -> str:
        return jws.serialize_compact({"alg": self.sig_alg}, json.dumps(payload).encode(),
                                     self.sig, algorithms=[self.sig_alg])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"sig": self.sig.as_dict(private=True),
                                    "enc": self.enc.as_dict(private=True)}))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> "DeviceKeys":
        raw = json.loads(path.read_text())
        imp = lambda d: (OKPKey if d["kty"] == "OKP" else ECKey).import_key(d)  # noqa: E731
        return cls(sig=imp(raw["sig"]), enc=imp(raw["enc"]))


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def error(self) -> dict | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


class ClientError(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(f"{answer.status}: {answer.error}")
        self.answer = answer


class Client:
    def __init__(self, base_url: str, *, device: DeviceKeys | None = None,
                 terminal_id: str | None = None, timeout: float = 15) -> None:
        self.base_url = base_url.rstrip("/")
        self.device, self.terminal_id, self.timeout = device, terminal_id, timeout
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.http = requests.Session()
        self._catalog: dict[str, dict] | None = None
        self._centre_enc: tuple[str, ECKey] | None = None

    # --- plumbing ----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> Answer:
        h = {"Content-Type": "application/json", **(headers or {})}
        if auth and self.access_token:
            h["Authorization"] = f"Bearer {self.access_token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        resp = self.http.request(method, f"{self.base_url}{path}", data=data, headers=h,
                                 timeout=self.timeout)
        if resp.headers.get("Content-Type", "").startswith("application/jose"):
            if self.device is None:
                raise RuntimeError("a sealed answer needs the device's encryption key")
            plain = jwe.decrypt_compact(resp.text, self.device.enc, algorithms=JWE_ALGS)
            body_out = json.loads(plain.plaintext)
        else:
            try:
                body_out = resp.json()
            except ValueError:
                body_out = resp.text
        return Answer(resp.status_code, body_out, dict(resp.headers))

    def _ok(self, answer: Answer) -> Any:
        if not answer.ok:
            raise ClientError(answer)
        return answer.data

    # --- terminal and session ----------------------------------------------------------------
    def register(self, terminal_id: str, enrolment_code: str) -> Any:
        self.terminal_id = terminal_id
        return self._ok(self.request("POST", "/v1/terminals/register", {
            "terminal_id": terminal_id, "enrolment_code": enrolment_code,
            **self.device.public()}, auth=False))

    def login(self, phone: str, *, pin: str | None = None, password: str | None = None,
              imei: str | None = None, imsi: str | None = None, check: bool = True) -> Answer:
        body: dict[str, Any] = {"phone": phone, "pin": pin, "password": password,
                                "terminal_id": self.terminal_id, "imei": imei, "imsi": imsi}
        if self.device is not None:
            nonce = self._ok(self.request("POST", "/v1/auth/challenge",
                                          {"terminal_id": self.terminal_id}, auth=False))
            body["proof"] = self.device.sign({"nonce": nonce["nonce"],
                                              "terminal_id": self.terminal_id, "phone": phone,
                                              "iat": int(time.time())})
        answer = self.request("POST", "/v1/auth/login", body, auth=False)
        if answer.ok:
            self._take(answer.data)
        elif check:
            raise ClientError(answer)
        return answer

    def _take(self, tokens: dict[str, Any]) -> None:
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    def refresh(self) -> Answer:
        answer = self.request("POST", "/v1/auth/refresh", {"refresh_token": self.refresh_token},
                              auth=False)
        if answer.ok:
            self._take(answer.data)
        return answer

    def logout(self) -> Answer:
        return self.request("POST", "/v1/auth/logout", {})

    def rotate_keys(self) -> Any:
        new = DeviceKeys.generate()
        proof = self.device.sign({**new.public(), "iat": int(time.time())})
        result = self._ok(self.request("POST", "/v1/terminals/rotate", {"proof": proof}))
        self.device = new
        return result

    # --- named requests -----------------------------------------------------------------------
    def catalog(self) -> dict[str, dict]:
        data = self._ok(self.request("GET", "/v1/catalog"))
        self._catalog = {r["name"]: r for r in data["requests"]}
        return self._catalog

    def _sensitivity(self, name: str) -> str:
        """The route's sensitivity from the catalogue (normal when it cannot be read)."""
        if self._catalog is None:
            try:
                self.catalog()
            except ClientError:
                return "normal"
        return self._catalog.get(name, {}).get("sensitivity", "normal")

    def sign(self, name: str, params: Any) -> str:
        return self.device.sign({"name": name, "params": params, "jti": uuid.uuid4().hex,
                                 "iat": int(time.time())})

    def seal(self, compact_jws: str) -> str:
        if self._centre_enc is None:
            keys = self.request("GET", "/v1/auth/keys", auth=False).body
            kid = keys["enc_kid"]
            jwk = next(k for k in keys["keys"] if k["kid"] == kid)
            self._centre_enc = (kid, ECKey.import_key(jwk))
        kid, key = self._centre_enc
        return jwe.encrypt_compact({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": kid},
                                   compact_jws.encode(), key, algorithms=JWE_ALGS)

    def invoke(self, name: str, params: Any = None, *, idempotency_key: str | None = None,
               protection: str = "auto", headers: dict[str, str] | None = None) -> Answer:
        params = {} if params is None else params
        if protection == "auto":
            protection = self._sensitivity(name)
        h = dict(headers or {})
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        path = f"/v1/invoke/{name}"
        if protection == "normal":
            return self.request("POST", path, params, headers=h)
        body = self.sign(name, params)
        if protection == "sealed":
            body = self.seal(body)
        h["Content-Type"] = "application/jose"
        return self.request("POST", path, raw=body.encode(), headers=h)
