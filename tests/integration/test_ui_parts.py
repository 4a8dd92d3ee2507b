"""Pure parts of the web UI: signed sessions and CSRF tokens, one-time log-in links, the
expiry chart, the Apple .mobileconfig builder."""

from __future__ import annotations

import datetime as dt
import plistlib
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from mtlskit.errors import BadInput
from mtlskit.issue.mobileconfig import PKCS12_PAYLOAD, ROOT_PAYLOAD, build_mobileconfig
from mtlskit.ui.chart import Bucket, svg, weekly
from mtlskit.ui.session import LoginLinks, Sessions

NOW = 1_800_000_000.0


def _sessions(tmp_path, key=b"k" * 32):
    return Sessions(key, tmp_path, 600)


def test_a_session_reads_back_until_it_expires(tmp_path):
    sessions = _sessions(tmp_path)
    cookie, session = sessions.open("alice", "admin", "link", NOW)
    assert sessions.read(cookie, NOW + 599) == session
    assert sessions.read(cookie, NOW + 600) is None
    assert session.principal.audit_by == "session:alice"


@pytest.mark.parametrize("mangle", [lambda c: c + "x", lambda c: "x" + c, lambda c: c.replace(".", ""),
                                    lambda c: c.split(".")[0] + ".", lambda c: "", lambda c: "a.b.c"])
def test_a_tampered_cookie_is_refused(tmp_path, mangle):
    sessions = _sessions(tmp_path)
    cookie, _ = sessions.open("alice", "admin", "link", NOW)
    assert sessions.read(mangle(cookie), NOW) is None


def test_another_key_refuses_the_cookie_and_its_csrf_token(tmp_path):
    ours, theirs = _sessions(tmp_path), _sessions(tmp_path, b"t" * 32)
    cookie, session = theirs.open("alice", "admin", "link", NOW)
    assert ours.read(cookie, NOW) is None
    assert not ours.csrf_ok(session, theirs.csrf_token(session))
    assert theirs.csrf_ok(session, theirs.csrf_token(session))


def test_csrf_tokens_differ_per_session_and_refuse_empty(tmp_path):
    sessions = _sessions(tmp_path)
    _, one = sessions.open("alice", "admin", "link", NOW)
    _, two = sessions.open("alice", "admin", "link", NOW)
    assert sessions.csrf_token(one) != sessions.csrf_token(two)
    assert not sessions.csrf_ok(one, sessions.csrf_token(two))
    assert not sessions.csrf_ok(one, "") and not sessions.csrf_ok(one, None)


def test_an_ended_session_is_refused(tmp_path):
    sessions = _sessions(tmp_path)
    cookie, session = sessions.open("alice", "admin", "link", NOW)
    sessions.end(session)
    assert sessions.read(cookie, NOW) is None


def test_a_short_key_is_refused(tmp_path):
    with pytest.raises(BadInput):
        Sessions(b"short", tmp_path, 600)


def test_login_links_work_once_each(tmp_path):
    links = LoginLinks(tmp_path)
    first, second = links.create(), links.create()
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    assert links.consume(first, now) and not links.consume(first, now)
    assert links.consume(second, now)


def test_weekly_buckets_sum_days():
    first = dt.date(2030, 1, 1)
    days = [(first, 2), (first + dt.timedelta(days=6), 1), (first + dt.timedelta(days=7), 5),
            (first - dt.timedelta(days=1), 9), (first + dt.timedelta(weeks=3), 9)]
    assert [b.count for b in weekly(days, first, 3)] == [3, 5, 0]


def test_the_svg_has_one_bar_per_week_and_escapes_names():
    buckets = [Bucket(dt.date(2030, 1, 1), 4, ("<b>x</b>", "a&b")), Bucket(dt.date(2030, 1, 8), 0)]
    text = str(svg(buckets))
    assert text.count("<rect") == 2 and "&lt;b&gt;x&lt;/b&gt;" in text and "a&amp;b" in text
    assert "<b>" not in text and "<script" not in text


def _pki():
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, issuer, key, signer, ca):
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(signer, hashes.SHA256()))
    root = cert("Test Root", "Test Root", root_key, root_key, True)
    return leaf_key, cert("alice", "Test Root", leaf_key, root_key, False), root


def test_mobileconfig_carries_a_legacy_p12_and_the_root():
    key, leaf, root = _pki()
    ids = iter(uuid.UUID(int=i) for i in range(1, 10))
    data = build_mobileconfig("alice", key, leaf, [], root, b"pw-123456", new_uuid=lambda: next(ids))
    profile = plistlib.loads(data)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    identity, trust = profile["PayloadContent"]
    assert identity["PayloadType"] == PKCS12_PAYLOAD and "Password" not in identity
    bundle = pkcs12.load_pkcs12(identity["PayloadContent"], b"pw-123456")
    assert bundle.cert.certificate == leaf
    assert trust["PayloadType"] == ROOT_PAYLOAD
    assert x509.load_der_x509_certificate(trust["PayloadContent"]) == root
    uuids = {profile["PayloadUUID"], identity["PayloadUUID"], trust["PayloadUUID"]}
    assert len(uuids) == 3 and all(u == u.upper() for u in uuids)
    assert data.startswith(b"<?xml")


def test_mobileconfig_embeds_the_password_only_when_asked_and_refuses_none():
    key, leaf, root = _pki()
    profile = plistlib.loads(build_mobileconfig("alice", key, leaf, [], root, b"pw-123456", embed_password=True))
    assert profile["PayloadContent"][0]["Password"] == "pw-123456"
    with pytest.raises(BadInput):
        build_mobileconfig("alice", key, leaf, [], root, b"")


def test_serve_refuses_an_out_of_range_session_lifetime(tmp_path, cli):
    home = tmp_path / "home"
    assert cli("--home", str(home), "init", "--no-passphrase").code == 0
    with open(home / "mtlskit.toml", "a") as config:
        config.write("\nui_session_minutes = 1\n")
    result = cli("--home", str(home), "serve", "--port", "0", "--ui")
    assert result.code == 2 and "ui_session_minutes must be between 5 and 10080" in result.err
    assert not (home / "ui" / "login").exists()


def test_a_scratch_directory_left_by_a_dead_issuer_is_removed(tmp_path):
    import os

    from mtlskit.issue.identity import STALE_SECONDS, remove_stale

    old, fresh = tmp_path / "old", tmp_path / "fresh"
    for directory in (old, fresh):
        (directory / "bundle").mkdir(parents=True)
        (directory / "bundle" / "key.pem").write_text("a key")
    now = 1_900_000_000
    os.utime(old, (now - STALE_SECONDS - 1, now - STALE_SECONDS - 1))
    os.utime(fresh, (now - 10, now - 10))
    assert remove_stale(tmp_path, now) == ["old"]
    assert not old.exists() and (fresh / "bundle" / "key.pem").exists()
