"""The HTML family's sandbox (``envs/html/sandbox.py``) under attack: each test runs an escape
or exhaustion attempt in a real sandbox and checks what stopped it. Never skipped: where
isolation cannot be had, ``run_sandboxed`` raises ``SandboxUnavailable`` and every test fails
naming what is missing (``make sandbox`` installs it)."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from teachable.cli import main as cli
from teachable.envs.html import sandbox as S
from teachable.envs.html.sandbox import SandboxConfig, SandboxUnavailable, run_sandboxed

REPO = Path(__file__).resolve().parents[1]
PAGE = """<html><body><h1>Prices</h1><table id="t">
<tr><th>Item</th><th>Price</th></tr><tr><td>Tea</td><td class="p">€4.50</td></tr>
<tr><td>Coffee</td><td class="p">€3.20</td></tr></table></body></html>"""


def run(code: str, page: str = PAGE, **config) -> S.SandboxResult:
    return run_sandboxed(textwrap.dedent(code), page, SandboxConfig(**config))


def report(code: str, **config) -> dict:
    """Run code that prints one JSON object last; that object."""
    r = run(code, **config)
    assert r.exit_code == 0 and r.stdout, r
    return json.loads(r.stdout.splitlines()[-1])


def sandbox_pids() -> set[int]:
    """Processes, zombies included, of a sandbox uid (root callers' sandboxes)."""
    pids = set()
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and p.stat().st_uid >= S.UID_BASE:
                pids.add(int(p.name))
        except FileNotFoundError:
            pass
    return pids


# ----------------------------------------------------------------------------- what works
def test_a_bs4_program_reads_the_page():
    """The page is /page.html, ``make_soup()`` parses it with lxml; non-ASCII text comes back."""
    r = run("""
        soup = make_soup()
        prices = {tr.td.get_text(): tr.select_one("td.p").get_text() for tr in soup.select("#t tr") if tr.td}
        print(prices["Coffee"], len(prices), open("/page.html").read().count("<tr>"))
    """)
    assert (r.stdout, r.error, r.exit_code, r.timed_out, r.output_truncated) == ("€3.20 2 3\n", None, 0, False, False)
    assert set(r.as_dict()) == {"stdout", "stderr", "error", "exit_code", "timed_out", "output_truncated", "seconds"}
    assert 0 < r.seconds < 5


def test_an_exception_is_a_result():
    """The agent's exception is the result's error (its last line) with the traceback from its own
    frame; exit codes pass through; a message that looks like bwrap's is still the agent's."""
    r = run("x = {}\nx['missing']")
    assert (r.exit_code, r.error) == (1, "KeyError: 'missing'") and 'File "/code.py", line 2' in r.stderr
    assert "RUNNER" not in r.stderr and "<string>" not in r.stderr
    assert run("import sys; sys.exit(3)").exit_code == 3
    r = run("print('unclosed'")
    assert r.error.startswith("SyntaxError: ") and 'File "/code.py", line 1' in r.stderr, r
    r = run("import sys; print('bwrap: Creating new namespace failed', file=sys.stderr); sys.exit(1)")
    assert r.error == "bwrap: Creating new namespace failed" and r.exit_code == 1


# ----------------------------------------------------------------------------- files
def test_host_files_and_the_repo_are_not_there():
    """Only the read-only binds exist: no /etc, /root, /home, the repo, the tests, the venv."""
    targets = ["/etc/passwd", "/etc/shadow", "/root", "/home", "/work", str(REPO / "pyproject.toml"),
               __file__, str(REPO / ".venv" / "bin" / "python"), "/var/log", "/run/teachable-sandbox"]  # fmt: skip
    got = report(f"""
        import json, os
        out = {{}}
        for p in {targets!r}:
            try:
                os.stat(p); out[p] = "exists"
            except OSError as e:
                out[p] = e.__class__.__name__
        out["/"] = sorted(os.listdir("/"))
        out["fds"] = sorted(os.listdir("/proc/self/fd"))
        print(json.dumps(out))
    """)
    assert all(got[p] == "FileNotFoundError" for p in targets), got
    assert got["/"] == sorted(["code.py", "dev", "lib", "lib64", "page.html", "proc", "site", "tmp", "usr"])
    assert got["fds"] == ["0", "1", "2", "3"]  # stdin/out/err and listdir's own: no bind source or pipe leaks


def test_writes_land_only_in_the_capped_tmpfs():
    """/, /usr/lib, /site, the page, /dev and /dev/shm are read-only; /tmp takes tmpfs_mb and no more."""
    got = report("""
        import json
        out = {}
        for p in ["/x", "/usr/lib/x", "/site/x", "/page.html", "/dev/x", "/dev/shm/x", "/proc/x"]:
            try:
                open(p, "w").write("1"); out[p] = "written"
            except OSError as e:
                out[p] = e.strerror
        written = 0
        try:
            for i in range(16):
                with open(f"/tmp/f{i}", "wb") as fh:
                    fh.write(b"x" * (2 << 20)); written += 2
        except OSError as e:
            out["tmp"] = [written, e.strerror]
        print(json.dumps(out))
    """, tmpfs_mb=8)
    assert all(v in ("Read-only file system", "No such file or directory") for k, v in got.items() if k != "tmp"), got
    assert got["tmp"] == [8, "No space left on device"], got  # 8 MB: four 2 MB files, not a fifth


# ----------------------------------------------------------------------------- network
def test_no_network_to_the_hosts_loopback():
    """A listener on the host's 127.0.0.1 is out of reach: an inet socket is refused (seccomp), the
    namespace's own table lacks the host's port, and a host's abstract unix socket is not there
    (its own network namespace)."""
    with socket.socket() as srv, socket.socket(socket.AF_UNIX) as usrv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        name = f"\0teachable-sandbox-test-{os.getpid()}".encode()
        usrv.bind(name)
        usrv.listen()
        for fam, addr in ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, name)):  # both live out here
            with socket.socket(fam) as c:
                c.connect(addr)
        got = report(f"""
            import json, socket
            out = {{}}
            for name, fam in (("inet", socket.AF_INET), ("inet6", socket.AF_INET6), ("netlink", socket.AF_NETLINK)):
                try:
                    socket.socket(fam).close(); out[name] = "created"
                except OSError as e:
                    out[name] = e.strerror
            try:
                socket.socket(socket.AF_UNIX).connect({name!r}); out["unix"] = "connected"
            except OSError as e:
                out["unix"] = e.strerror
            out["port_listed"] = "{port:04X}" in open("/proc/net/tcp").read()
            print(json.dumps(out))
        """)
    assert got == {"inet": "Operation not permitted", "inet6": "Operation not permitted",
                   "netlink": "Operation not permitted", "unix": "Connection refused", "port_listed": False}  # fmt: skip


# ----------------------------------------------------------------------------- processes and limits
def test_fork_bomb_makes_no_process():
    """fork, a ctypes fork, subprocess and posix_spawn all fail: a new process is refused (seccomp)."""
    got = report("""
        import ctypes, json, os, subprocess
        out = {}
        try:
            while True:
                os.fork()
        except OSError as e:
            out["fork"] = e.strerror
        out["libc_fork"] = ctypes.CDLL(None, use_errno=True).fork(), os.strerror(ctypes.get_errno())
        for name, call in (("subprocess", lambda: subprocess.run(["/usr/bin/python3", "-c", "1"])),
                           ("posix_spawn", lambda: os.posix_spawn("/usr/bin/python3", ["p"], {}))):
            try:
                call(); out[name] = "ran"
            except OSError as e:
                out[name] = e.strerror
        print(json.dumps(out))
    """)
    assert got == {"fork": "Operation not permitted", "libc_fork": [-1, "Operation not permitted"],
                   "subprocess": "Operation not permitted", "posix_spawn": "Operation not permitted"}, got  # fmt: skip


def test_concurrent_sandboxes_of_root_get_their_own_uids():
    """A root caller's concurrent sandboxes run as distinct unprivileged uids (a slot lock each,
    held for the call); a slot is free again once its call ends. Another caller keeps its uid."""
    if os.geteuid() != 0:
        with S._uid_slot() as uid:
            assert uid is None
        return
    with S._uid_slot() as a, S._uid_slot() as b:
        assert a != b and min(a, b) >= S.UID_BASE
        with ThreadPoolExecutor(2) as ex:  # two sandboxes beside the two held slots
            results = list(ex.map(lambda _: run("import os; print(os.getuid())"), range(2)))
        assert [r.stdout for r in results] == [f"{S.INSIDE_UID}\n"] * 2
    with S._uid_slot() as c:
        assert c == min(a, b)


def test_thread_bomb_stops_at_the_task_limit():
    """Threads are allowed, up to RLIMIT_NPROC of the sandbox's own uid (a root caller's sandbox
    runs unprivileged: run by root, bwrap's tasks ignore the limit)."""
    got = report("""
        import json, threading
        ev, n = threading.Event(), 0
        try:
            while n < 200:
                threading.Thread(target=ev.wait, daemon=True).start(); n += 1
        except RuntimeError as e:
            err = str(e)
        ev.set()
        print(json.dumps([n, err]))
    """, tasks=16)
    assert 8 <= got[0] < 16 and got[1] == "can't start new thread", got


def test_memory_bomb_is_a_memory_error():
    """The address space is capped: one big allocation and a growing list both end in MemoryError."""
    r = run("""
        try:
            bytearray(1 << 31)
        except MemoryError:
            print("big: MemoryError")
        chunks = []
        while True:
            chunks.append(bytearray(16 << 20))
    """, memory_mb=256)
    assert r.stdout == "big: MemoryError\n" and r.error == "MemoryError" and r.exit_code == 1, r


def test_infinite_loop_times_out_and_leaves_no_process():
    """The wall-clock timeout kills the sandbox: bwrap, its PID namespace and everything in it,
    none left even as a zombie."""
    before = sandbox_pids()
    r = run("import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\nwhile True: pass",
            timeout_s=0.5)
    assert r.timed_out and r.error == "timed out after 0.5 s" and r.exit_code == -9 and 0.5 <= r.seconds < 2, r
    assert not sandbox_pids() - before


def test_100_mb_of_output_is_cut_at_the_cap():
    """Output is read up to the cap; past it the sandbox is stopped (at once, not at the timeout)."""
    r = run("import sys\nsys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()\nprint('done')", output_bytes=4096)
    assert r.output_truncated and r.stdout == "x" * 4096 and r.error == "output over 4096 bytes: stopped", r
    assert r.seconds < 2
    r = run("import sys\nfor _ in range(10**9): sys.stderr.write('e' * 1000)", output_bytes=4096)
    assert r.output_truncated and len(r.stderr) == 4096 and not r.timed_out


def test_ctypes_system_and_exec_run_nothing():
    """libc's system() cannot start a shell and exec is refused: no program other than the interpreter runs."""
    got = report("""
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        out = {"system": libc.system(b"echo pwned > /tmp/pwned")}
        out["pwned"] = os.path.exists("/tmp/pwned")
        out["execv"] = libc.execv(b"/usr/bin/python3", None), os.strerror(ctypes.get_errno())
        try:
            os.execv("/usr/bin/python3", ["python3", "-c", "print('replaced')"])
        except OSError as e:
            out["os.execv"] = e.strerror
        print(json.dumps(out))
    """)
    assert got["system"] != 0 and not got["pwned"], got
    assert got["execv"] == [-1, "Operation not permitted"] and got["os.execv"] == "Operation not permitted", got


def test_the_parents_api_key_is_nowhere(monkeypatch):
    """The caller's environment does not reach the sandbox: not in os.environ, not in any
    /proc/*/environ (bwrap starts with an empty environment) nor any process's cmdline."""
    secret = "sk-teachable-sandbox-test-4f1c9e"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    got = report("""
        import json, os
        seen = {"environ": dict(os.environ)}
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            for f in ("environ", "cmdline"):
                try:
                    seen[f"{pid}/{f}"] = open(f"/proc/{pid}/{f}", "rb").read().decode(errors="replace")
                except OSError as e:
                    seen[f"{pid}/{f}"] = e.strerror
        print(json.dumps(seen))
    """)
    assert secret not in json.dumps(got) and "OPENAI_API_KEY" not in json.dumps(got)
    assert got["environ"] == {"LC_CTYPE": "C.UTF-8"} or set(got["environ"]) <= {"LC_CTYPE", "PWD"}, got["environ"]
    assert got["1/environ"] == "", got  # the namespace's init: bwrap's child
    assert len([k for k in got if k.endswith("/environ")]) == 2  # init and the interpreter: the whole namespace


def test_ptrace_and_kernel_interfaces_are_refused():
    """ptrace (of the namespace's init and of itself), process_vm_readv, bpf, keyctl, mount and
    perf_event_open answer EPERM (seccomp)."""
    got = report("""
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        def call(nr, *args):
            r = libc.syscall(nr, *args)
            return [r, os.strerror(ctypes.get_errno()) if r == -1 else ""]
        out = {"ptrace_attach_init": call(101, 16, 1, 0, 0), "ptrace_traceme": call(101, 0, 0, 0, 0),
               "process_vm_readv": call(310, 1, 0, 0, 0, 0, 0), "bpf": call(321, 0, 0, 0),
               "keyctl": call(250, 0, 0), "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, 0),
               "perf_event_open": call(298, 0, 0, -1, -1, 0)}
        status = dict(line.split(":\t") for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
        print(json.dumps([out, status["Seccomp"], status["NoNewPrivs"], status["CapEff"]]))
    """)
    assert got[1:] == ["2", "1", "0000000000000000"], got  # a filter, no new privileges, no capability
    assert all(v == [-1, "Operation not permitted"] for v in got[0].values()), got


def test_no_user_namespace_inside():
    """A new user namespace (the way to regain capabilities) is refused, by unshare and by clone
    (seccomp; bwrap's --disable-userns is the layer behind it)."""
    got = report("""
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        out = {"unshare": [libc.unshare(0x10000000), os.strerror(ctypes.get_errno())]}
        out["clone"] = [libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0), os.strerror(ctypes.get_errno())]
        print(json.dumps(out))
    """)
    assert got == {"unshare": [-1, "Operation not permitted"], "clone": [-1, "Operation not permitted"]}, got


# ----------------------------------------------------------------------------- no isolation, no run
def test_missing_isolation_raises_naming_it(monkeypatch, tmp_path):
    """No bwrap, no interpreter, no site directory, or a bwrap that cannot set the sandbox up: an
    error naming what is missing, never an unisolated run."""
    with pytest.raises(SandboxUnavailable, match="site directory .* lacks bs4.*make sandbox"):
        run("print(1)", site=str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="interpreter /nonexistent/python3"):
        run("print(1)", python="/nonexistent/python3")
    with tempfile.TemporaryDirectory() as bin_:  # a bwrap that fails as one without namespaces does
        fake = Path(bin_) / "bwrap"  # (in a directory the sandbox's uid can enter, unlike tmp_path)
        fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
        os.chmod(bin_, 0o755)
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", bin_)
        with pytest.raises(SandboxUnavailable, match="did not come up .*No permissions to create new namespace"):
            run("print(1)")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match=r"bwrap\) is missing: run `make sandbox`"):
        run("print(1)")


def test_config_refuses_bad_limits():
    for bad in ({"timeout_s": 0}, {"timeout_s": float("nan")}, {"timeout_s": "5"}, {"memory_mb": 0},
                {"tasks": 2.5}, {"output_bytes": True}):  # fmt: skip
        with pytest.raises(ValueError, match=f"sandbox {next(iter(bad))}"):
            SandboxConfig(**bad)


# ----------------------------------------------------------------------------- teachable sandbox-run
def sandbox_run(*argv) -> int:
    with pytest.raises(SystemExit) as e:
        cli(["sandbox-run", *argv])
    return e.value.code


def test_sandbox_run_prints_the_result(tmp_path, capsys):
    (tmp_path / "p.py").write_text("print(make_soup().h1.get_text())\n")
    (tmp_path / "p.html").write_text(PAGE)
    assert sandbox_run("--code", str(tmp_path / "p.py"), "--html", str(tmp_path / "p.html"), "--timeout", "3") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["stdout"], out["error"], out["exit_code"]) == ("Prices\n", None, 0)


def test_sandbox_run_refuses_bad_input(tmp_path, capsys, monkeypatch):
    """Exit 2 with a message naming the bad file or value; a failing program is still exit 0."""
    code, page, latin = tmp_path / "p.py", tmp_path / "p.html", tmp_path / "latin.html"
    code.write_text("raise SystemExit(5)\n")
    page.write_text(PAGE)
    latin.write_bytes("<p>caf\xe9</p>".encode("latin-1"))
    assert sandbox_run("--code", str(code), "--html", str(page)) == 0
    assert json.loads(capsys.readouterr().out)["exit_code"] == 5
    cases = [(["--code", str(tmp_path / "none.py"), "--html", str(page)], "--code .*none.py: No such file"),
             (["--code", str(code), "--html", str(latin)], "--html .*latin.html is not UTF-8"),
             (["--code", str(code), "--html", str(page), "--timeout", "0"], "timeout_s must be"),
             (["--code", str(code), "--html", str(page), "--timeout", "nan"], "timeout_s must be"),
             (["--code", str(code), "--html", str(page), "--timeout", "soon"], "--timeout: invalid float value")]
    for argv, message in cases:
        assert sandbox_run(*argv) == 2, argv
        assert re.search(message, capsys.readouterr().err), (argv, message)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sandbox_run("--code", str(code), "--html", str(page)) == 2
    assert "bwrap) is missing" in capsys.readouterr().err
