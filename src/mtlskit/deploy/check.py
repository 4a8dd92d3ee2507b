"""``--check``: run the server's own configuration test on what was written.

``nginx -t``, ``apache2 -t`` and ``haproxy -c`` are run on a complete configuration:
the standalone file itself, or, for an include-only site, a scratch wrapper around it
(pid and logs in a temporary directory, nothing written next to the site). Then every
file is checked to be readable by the user that opens it (``access.py``): a config test
run as root reads everything, the worker that serves requests may not.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

from mtlskit.deploy.access import unreadable
from mtlskit.deploy.options import DeployOptions
from mtlskit.deploy.reload import child_environment
from mtlskit.deploy.render import Layout, render_main, site_for_check

BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of a config test. ``ran`` is False when the server binary is absent."""

    ran: bool
    ok: bool
    command: tuple[str, ...] = ()
    output: str = ""
    unreadable: str | None = None     # a file the server's reader cannot open (access.py), one line

    @property
    def summary(self) -> str:
        """The server's own words on one line: its error lines, without the banner."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        errors = [line for line in lines if not line.startswith("[NOTICE]") and "test failed" not in line
                  and "Fatal errors found" not in line]
        return "; ".join((errors or lines)[-4:])


def check_command(server: str, config: Path, run_dir: Path) -> list[str]:
    """The config-test argv for a complete configuration file."""
    if server == "nginx":
        return ["nginx", "-t", "-q", "-p", str(run_dir), "-c", str(config), "-e", str(run_dir / "error.log")]
    if server == "apache":
        return ["apache2", "-t", "-f", str(config)]
    return ["haproxy", "-c", "-f", str(config)]


def run_check(options: DeployOptions, verify_depth: int, timeout: float = 60) -> CheckResult:
    """Config-test the deployment already installed in ``options.directory``.

    Returns:
        CheckResult; ``ran=False`` when the server's binary is not installed.
    """
    binary = BINARIES[options.server]
    if shutil.which(binary) is None:
        return CheckResult(ran=False, ok=False, output=f"{binary} is not installed; check skipped")
    layout = Layout(options.directory, options.server)
    with tempfile.TemporaryDirectory(prefix="mtlskit-check-") as scratch:
        run_dir = Path(scratch)
        if options.standalone:
            config = layout.main
            if options.server == "nginx":
                run_dir = layout.directory
        else:
            config = run_dir / layout.main.name
            site = layout.site.read_text()
            site_path = layout.site
            if options.server == "nginx":             # nginx -t opens the site's log files
                site_path = run_dir / layout.site.name
                site_path.write_text(site_for_check(options, site, run_dir))
            config.write_text(render_main(options, verify_depth, site, run_dir, site_path))
        argv = check_command(options.server, config, run_dir)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  env=child_environment(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return CheckResult(ran=True, ok=False, command=tuple(argv), output=f"{binary} timed out")
    output = (proc.stdout + proc.stderr).strip()
    blocked = unreadable(options)
    return CheckResult(ran=True, ok=proc.returncode == 0 and blocked is None, command=tuple(argv),
                       output=output, unreadable=blocked)
