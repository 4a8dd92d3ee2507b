# make run   — set up, create a demo CA (embedded SQLite) and start `mtlskit serve` on it
# make test  — set up (Python packages + Debian packages) and run the whole suite, then the
#              integration and e2e tiers again on PostgreSQL (MTLSKIT_TEST_DATABASE=postgresql)
# make test-reference — the whole suite on the reference encoders (cryptography's builders
#              instead of the hand-written DER: MTLSKIT_REFERENCE_ENCODERS=1)
# make bench — benchmarks: mtlskit against the tools it replaces, same run, with ratios
# make fuzz  — each fuzz target of fuzz/ for FUZZ_SECONDS (hypothesis; atheris too if installed): executions, findings

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_HOME ?= $(CURDIR)/demo-home
BENCH_N ?= 20000
# certificates in the inventory of bench/bench_postgres.py (make bench BENCH_PG_N=100000: a quick run)
BENCH_PG_N ?= 1000000
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ocsp_request http_head csr_pem deploy_render api_requests
ATHERIS_TARGETS := ocsp_request http_simple csr_pem   # when atheris is installed (optional)

# The tests of the DER fast paths and what uses them (pki, publish, issue, revoke; unit and
# integration): `make test` runs them on the reference encoders too (~30 s; the whole
# suite twice would take minutes: `make test-reference` runs it).
REFERENCE_SUBSET := $(addprefix tests/unit/test_,crl_builder.py crl_stored_entries.py der.py leafder.py \
	ocsp_builder.py ocsp_nonce_fast.py pki.py signing.py reference_encoders.py) \
	$(addprefix tests/integration/test_,api_ocsp.py api_revoke.py core_cli.py crl_export.py crl_refill.py \
	crl_refresher.py issue_batch.py ocsp_responders.py revoke_cli.py revoke_workflow.py) \
	tests/security/test_signer_only.py

.PHONY: setup system-deps run test test-fast test-reference bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,postgres,pkcs11]'
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	./scripts/system-deps.sh

run: setup
	MTLSKIT_HOME=$(DEMO_HOME) $(BIN)/python -m mtlskit.api.demo

test: setup system-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider
	MTLSKIT_TEST_DATABASE=postgresql $(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider tests/integration tests/e2e
	MTLSKIT_REFERENCE_ENCODERS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider $(REFERENCE_SUBSET)

test-reference: setup system-deps
	MTLSKIT_REFERENCE_ENCODERS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/integration

bench: setup system-deps
	$(BIN)/python bench/bench_issue.py --count $(BENCH_N)                 # on the disk (ext4 here)
	$(BIN)/python bench/bench_issue.py --count $(BENCH_N) --dir /dev/shm  # the disk taken out
	$(BIN)/python bench/bench_renew.py --count $(BENCH_N)                 # renew --expiring vs the guides' rotation script
	$(BIN)/python bench/bench_crl.py --sizes 100000,1000000   # includes one revocation via serve --api
	$(BIN)/python bench/bench_cli.py --count 100000           # one command per process, against openssl
	$(BIN)/python bench/bench_verify.py --count 2000
	$(BIN)/python bench/bench_backup.py --count 100000   # backup/restore of a 100,000-certificate home vs sqlite3 .backup + tar
	$(BIN)/python bench/bench_ocsp.py                          # includes metrics on against --no-metrics
	$(BIN)/python bench/bench_metrics.py --count 100000        # a /metrics scrape with 100,000 certificates
	$(BIN)/python bench/bench_abuse.py --seconds 60 --idle 2000   # serve under a client that never reads
	$(BIN)/python bench/bench_swap.py --seconds 4 --swaps 3   # a server certificate replaced under mTLS load
	$(BIN)/python bench/bench_postgres.py --count $(BENCH_PG_N)   # SQLite and PostgreSQL side by side, two replicas
	$(BIN)/python bench/bench_pkcs11.py --count 2000          # CA keys in SoftHSM2 vs in files, same run
	$(BIN)/python bench/bench_authz.py            # nginx with and without --policy (auth_request to /authz), same run
	$(BIN)/python bench/bench_ui.py --count 100000          # every web UI page with 100,000 certificates (target 200 ms)

fuzz: setup
	@failed=0; for target in $(FUZZ_TARGETS); do \
		$(BIN)/python -m fuzz.$$target --seconds $(FUZZ_SECONDS) || failed=1; \
	done; \
	if $(BIN)/python -c 'import atheris' 2>/dev/null; then for target in $(ATHERIS_TARGETS); do \
		out=$$($(BIN)/python -m fuzz.atheris_run $$target --seconds $(FUZZ_SECONDS) 2>&1) \
			&& echo "atheris $$target: $$(echo "$$out" | grep -a -m1 '^Done')" \
			|| { echo "$$out" | tail -40; failed=1; }; \
	done; else echo "atheris is not installed: byte-level coverage-guided runs skipped"; fi; exit $$failed

clean:
	rm -rf $(VENV) demo-home demo-out bench/out
