"""remote.py: the CRL a certificate names, judged like a --crl file, with the fetch
injected (the bounded HTTP itself is tested in tests/security/test_verify_fetch.py)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.verify.fetch import FetchError
from mtlskit.verify.findings import Level
from mtlskit.verify.remote import Fallback, NamedUrlsSource, crl_urls
from tests.support_verify import NOW, make_ca, make_crl, make_leaf

ROOT = make_ca("Remote Root")
INTER = make_ca("Remote Intermediate", ROOT)
URL = "http://crl.example/crl/intermediate.crl"


class Served:
    """A fake GET: url -> bytes or an exception; records what was asked."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.asked = answers, []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        answer = self.answers.get(url, FetchError(f"{url} could not be fetched: Connection refused"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def source(answers: dict) -> tuple[NamedUrlsSource, Served]:
    get = Served(answers)
    return NamedUrlsSource(crl=True, ocsp=False, get=get), get


def codes(found) -> list[str]:
    return [f.code for f in found]


def test_a_revoked_leaf_is_found_on_the_crl_it_names():
    leaf = make_leaf("mallory", INTER, crl_urls=(URL,))
    crl = make_crl(INTER, {leaf.cert.serial_number: x509.ReasonFlags.key_compromise})
    remote, get = source({URL: crl.public_bytes(Encoding.DER)})
    assert codes(remote([leaf.cert, INTER.cert, ROOT.cert], NOW)) == ["revoked"]
    assert get.asked == [URL]


def test_pem_is_accepted_and_a_good_leaf_has_no_finding():
    leaf = make_leaf("alice", INTER, crl_urls=(URL,))
    remote, _ = source({URL: make_crl(INTER).public_bytes(Encoding.PEM)})
    assert remote([leaf.cert, INTER.cert], NOW) == []


def test_the_next_url_is_tried_when_the_first_fails():
    leaf = make_leaf("alice", INTER, crl_urls=("ldap://dir.example/cn=crl", URL))
    remote, get = source({URL: make_crl(INTER).public_bytes(Encoding.DER)})
    remote.get = lambda url: (_ for _ in ()).throw(FetchError("only http:// URLs are fetched")) \
        if url.startswith("ldap") else get(url)
    assert remote([leaf.cert, INTER.cert], NOW) == []


def test_a_failed_fetch_is_a_warning_that_says_why():
    leaf = make_leaf("alice", INTER, crl_urls=(URL,))
    remote, _ = source({})
    [finding] = remote([leaf.cert, INTER.cert], NOW)
    assert (finding.code, finding.level) == ("crl-unavailable", Level.WARNING)
    assert "Connection refused" in finding.message and "'alice'" in finding.message and finding.hint


def test_garbage_and_a_crl_of_another_ca_are_not_used():
    leaf = make_leaf("alice", INTER, crl_urls=(URL,))
    for body, words in ((b"<html>nope</html>", "did not answer with a CRL"),
                        (make_crl(make_ca("Stranger")).public_bytes(Encoding.DER), "CN=Stranger")):
        remote, _ = source({URL: body})
        [finding] = remote([leaf.cert, INTER.cert], NOW)
        assert finding.code == "crl-unavailable" and words in finding.message


def test_a_crl_signed_by_another_key_under_the_same_name_is_an_error():
    impostor = make_ca("Remote Intermediate", ROOT)  # same subject, other key
    leaf = make_leaf("alice", INTER, crl_urls=(URL,))
    remote, _ = source({URL: make_crl(impostor).public_bytes(Encoding.DER)})
    assert codes(remote([leaf.cert, INTER.cert], NOW)) == ["crl-bad-signature"]


def test_covers_only_paths_that_name_a_url():
    named = make_leaf("alice", INTER, crl_urls=(URL,))
    silent = make_leaf("bob", INTER)
    remote, get = source({})
    assert crl_urls(silent.cert) == [] and crl_urls(named.cert) == [URL]
    assert remote.covers([named.cert, INTER.cert]) and not remote.covers([silent.cert, INTER.cert])
    assert remote([silent.cert, INTER.cert], NOW) == [] and get.asked == []


def test_fallback_asks_nobody_when_the_inventory_covers_the_path():
    leaf = make_leaf("alice", INTER, crl_urls=(URL,))
    remote, get = source({})

    class Inventory:
        def __call__(self, path, at):
            return []

        def covers(self, path):
            return True
    assert Fallback(remote, before=[Inventory()])([leaf.cert, INTER.cert], NOW) == []
    assert get.asked == []
