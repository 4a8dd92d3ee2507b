"""Fuzz target: what the REST API reads from a request before any workflow runs.

- ``token.bearer_token`` on any ``Authorization`` value: never raises, and accepts exactly
  ``Bearer`` + one space + a b64token (RFC 6750 §2.1), checked against a regular expression
  written out here independently.
- ``rest.parse_body`` on any body (mutations of real requests, deep and huge JSON, bytes
  that are not UTF-8) for every request model: a model, or BadInput (400), InvalidRequest
  (422) or the 413; never another exception, never the body in the message.
- ``rest_certificates.search_of`` on any query: a Search, or InvalidRequest.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from hypothesis import strategies as st
from starlette.exceptions import HTTPException

from fuzz import engine
from fuzz.mutate import mutated
from mtlskit.api import rest_models
from mtlskit.api.rest import parse_body
from mtlskit.api.rest_certificates import SEARCH_PARAMETERS, search_of
from mtlskit.api.token import bearer_token
from mtlskit.errors import BadInput

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
MODELS = (rest_models.IssueRequest, rest_models.SignRequest, rest_models.RenewRequest, rest_models.RevokeRequest)
B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
SEEDS = [json.dumps(body).encode() for body in (
    {"profile": "client", "name": "alice", "dns": ["a.example"], "days": 30, "subject": {"org": "Ops"},
     "pkcs12": {"password": "pw", "profile": "legacy"}},
    {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", "profile": "server"},
    {"csr": "x", "new_key": False, "revoke_old": False},
    {"targets": ["alice", "serial:0a"], "reason": "key-compromise", "at": "2026-01-02T03:04:05Z"},
)] + [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"1" + b"0" * 5000, b"\xff\xfe{}"]

_AUTHORIZATION = st.one_of(
    st.text(max_size=60),
    st.builds(lambda scheme, gap, token: scheme + gap + token,
              st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearer:", ""]),
              st.sampled_from([" ", "  ", "\t", "", " \u00a0"]),
              st.text(alphabet="AZaz09-._~+/= \n\x00é", max_size=30)))
_QUERY = st.dictionaries(st.one_of(st.sampled_from(SEARCH_PARAMETERS), st.text(max_size=8)),
                         st.text(max_size=30), max_size=5)

CASES = st.tuples(_AUTHORIZATION, st.one_of(mutated(SEEDS, 3), st.binary(max_size=200)), st.sampled_from(MODELS),
                  _QUERY)


def check(case) -> None:
    authorization, body, model, query = case
    token = bearer_token(authorization)
    expected = authorization[7:] if authorization.startswith("Bearer ") else None
    if expected is not None and not B64TOKEN.fullmatch(expected):
        expected = None
    assert token == expected, (authorization, token)
    try:
        parse_body(model, "application/json", body, "{}")
    except BadInput as refused:   # InvalidRequest is one
        assert len(refused.message) < 2000 and (len(body) < 40 or body.decode("latin-1") not in refused.message)
    except HTTPException as refused:
        assert refused.status_code == 413
    try:
        search_of(query, list(query), NOW)
    except BadInput:
        pass


if __name__ == "__main__":
    engine.main("api_requests", CASES, check)
