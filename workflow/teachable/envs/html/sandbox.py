"""Where an agent's Python runs: a fresh bubblewrap (Debian's ``bubblewrap``) per call.

    run_sandboxed(code, html, SandboxConfig(timeout_s=2)) -> SandboxResult
    teachable sandbox-run --code prog.py --html page.html [--timeout S]

- Namespaces: all of them (user, mount, PID, network, IPC, UTS, cgroup), ``--disable-userns``
  (no user namespace inside), ``--die-with-parent``, ``--new-session``. bwrap starts with an
  empty environment: ``--clearenv`` alone leaves the caller's in the sandbox's ``/proc/1/environ``.
- Files: a read-only root holding the system libraries (``/usr/lib``), the interpreter
  (``SandboxConfig.python``, default Debian's python3, with its prefix when that is not ``/usr``),
  the site directory at ``/site`` (bs4, lxml, soupsieve and pyseccomp at the ``html`` extra's
  pins, built by ``make sandbox``), the page at ``/page.html`` and the code at ``/code.py``;
  a size-capped tmpfs at ``/tmp`` is the only writable place. A bind source must be reachable by
  the uid bwrap runs as: a root caller's site directory is ``/opt/teachable-sandbox/site``, not
  the repository (which may sit in a private home), and an interpreter in a private home (a
  pyenv build in /root) cannot be used.
- A root caller runs bwrap as an unprivileged uid, one per concurrent sandbox (``UID_BASE`` + a
  slot locked for the call, so sandboxes do not share a task count). Run by root, the sandbox's
  user would own every root-owned file bound in (measured: ``/usr/lib``'s owner reads as the
  sandbox's uid 1000; dropped, 65534).
- Before the agent's code, ``RUNNER`` sets hard rlimits (CPU seconds, address space, tasks, file
  size, open files, no core file) and loads a seccomp filter (``_seccomp_bpf``: compiled once
  per process by libseccomp, handed over as a BPF program) answering EPERM to the ``DENIED``
  calls (``execve`` among them: loaded after the interpreter's own), to a new process and to
  sockets other than AF_UNIX. Then it writes one byte to a pipe: the sandbox is up. (Loading
  the compiled filter costs a few ms a call; compiling it inside with pyseccomp cost 40-50 ms:
  benchmarks/README.md.)
- A wall-clock timeout kills the PID namespace's init (bwrap's child; its host pid from
  ``--info-fd``): the kernel kills everything else in the namespace, and bwrap reaps it and exits.
  stdout and stderr are read up to ``output_bytes`` each; past it the sandbox is killed and the
  result marked ``output_truncated``.

The agent's failures (an exception, a limit, a timeout, a kill) are results. A sandbox that
cannot be had (no bwrap, interpreter or site directory, or isolation that fails to come up)
raises ``SandboxUnavailable`` naming what is missing: nothing runs unisolated."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import fcntl
import functools
import importlib.util
import json
import math
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

VERSION = 1  # the sandbox's behaviour: a cache of its results keys on it
UID_BASE = 2_000_000_000  # a root caller's sandboxes run as UID_BASE + slot (no account has these uids)
MAX_SLOTS = 64  # concurrent sandboxes of root callers on one machine
SLOT_DIR = "/run/teachable-sandbox"  # their slot locks
# the site directory `make sandbox` builds (the Makefile's SANDBOX_SITE, by the same rule): for root
# a system path its sandboxes' unprivileged uids can reach, for anyone else the repository's
DEFAULT_SITE = ("/opt/teachable-sandbox/site" if os.geteuid() == 0
                else str(Path(__file__).resolve().parents[4] / ".sandbox" / "site"))  # fmt: skip
INSIDE_UID = 1000  # the uid the code sees
# answered EPERM: tracing and other processes' memory, kernel keys, BPF, perf, mounts and
# namespaces, modules and kexec, running a program, io_uring (its own path around seccomp)
DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open", "userfaultfd",
          "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "chroot", "move_mount",
          "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns",
          "open_by_handle_at", "name_to_handle_at", "init_module", "finit_module", "delete_module",
          "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl",
          "personality", "fork", "vfork", "execve", "execveat", "io_uring_setup", "io_uring_enter",
          "io_uring_register")  # fmt: skip

# Runs inside, as `python -I -S -c RUNNER READY_FD BPF_FD RLIMIT=VALUE...`: the limits, the
# seccomp filter (the BPF program ``_seccomp_bpf`` compiled), the ready byte, the agent's code.
RUNNER = r'''
import ctypes, os, resource, sys
ready, bpf = int(sys.argv[1]), int(sys.argv[2])
for limit in sys.argv[3:]:
    name, value = limit.split("=")
    resource.setrlimit(getattr(resource, name), (int(value), int(value)))
sys.argv, sys.path[:0] = ["/code.py"], ["/site"]
prog = os.read(bpf, 1 << 20)
os.close(bpf)
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(SockFprog(len(prog) // 8, prog)), 0, 0):
    raise OSError(ctypes.get_errno(), "the seccomp filter did not load")  # PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP
os.write(ready, b"1")
os.close(ready)
del SockFprog, bpf, ctypes, libc, limit, name, prog, ready, resource, value

def make_soup(features="lxml"):
    """The page (/page.html) parsed by BeautifulSoup."""
    from bs4 import BeautifulSoup

    with open("/page.html", encoding="utf-8") as fh:
        return BeautifulSoup(fh.read(), features)


def _run():
    with open("/code.py", encoding="utf-8") as fh:
        source = fh.read()
    try:
        exec(compile(source, "/code.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__,
                                                   "make_soup": make_soup})
    except SystemExit:
        raise
    except BaseException as e:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # from the agent's frame on
        sys.exit(1)


_run()
'''


class SandboxUnavailable(RuntimeError):
    """No isolation can be had here; the message names what is missing."""


@dataclass(frozen=True)
class SandboxConfig:
    """What a call may use. ``python``: the interpreter (``env.sandbox.python``); ``site``: the
    site directory; memory = address space; tasks = processes and threads of the sandbox's uid."""

    python: str = "/usr/bin/python3"
    site: str = DEFAULT_SITE
    timeout_s: float = 5.0
    memory_mb: int = 512
    tmpfs_mb: int = 16
    tasks: int = 32
    open_files: int = 64
    file_mb: int = 16
    output_bytes: int = 64 * 1024

    def __post_init__(self):
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= 600:
            raise ValueError(f"sandbox timeout_s must be a number of seconds in (0, 600], got {t!r}")
        for k in ("memory_mb", "tmpfs_mb", "tasks", "open_files", "file_mb", "output_bytes"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"sandbox {k} must be a positive integer, got {v!r}")

    def rlimits(self) -> dict[str, int]:
        mb = 1 << 20
        return {"RLIMIT_CPU": math.ceil(self.timeout_s) + 1, "RLIMIT_AS": self.memory_mb * mb,
                "RLIMIT_NPROC": self.tasks, "RLIMIT_FSIZE": self.file_mb * mb,
                "RLIMIT_NOFILE": self.open_files, "RLIMIT_CORE": 0}  # fmt: skip


@dataclass(frozen=True)
class SandboxResult:
    """One call. ``error``: None when the code exited 0, else what stopped it (the exception's
    line, the timeout, the signal, the output cap); ``exit_code``: bwrap's (the code's, or 128 +
    the signal that killed it; -9 when the sandbox was killed from outside: a timeout or the cap)."""

    stdout: str
    stderr: str
    error: str | None
    exit_code: int
    timed_out: bool
    output_truncated: bool
    seconds: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_sandboxed(code: str, html: str, config: SandboxConfig = SandboxConfig()) -> SandboxResult:
    """Run ``code`` in a fresh sandbox with ``html`` at ``/page.html`` (``make_soup()`` parses it)."""
    t0 = time.monotonic()
    bwrap = _check(config)
    with contextlib.ExitStack() as stack:
        uid = stack.enter_context(_uid_slot())
        fds: list[int] = []

        def data(name: str, content: str | bytes) -> str:  # a file's content, in a memfd
            fds.append(os.memfd_create(name))
            stack.callback(os.close, fds[-1])
            os.write(fds[-1], content.encode() if isinstance(content, str) else content)  # taken whole
            os.lseek(fds[-1], 0, os.SEEK_SET)
            return str(fds[-1])

        try:
            bpf = data("seccomp", _seccomp_bpf(config.site))  # read by RUNNER, not bound
        except (OSError, AttributeError, TypeError, ImportError) as e:
            raise SandboxUnavailable(f"the seccomp filter did not compile ({config.site}/pyseccomp.py with "
                                     f"the host's libseccomp.so.2): {e}") from e
        ready_r, ready_w = os.pipe()
        info_r, info_w = os.pipe()  # bwrap's --info-fd: the host pid of the namespace's init
        stack.callback(os.close, ready_r)
        stack.callback(os.close, info_r)
        argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                "--new-session", "--info-fd", str(info_w), "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID),
                "--hostname", "sandbox"]  # fmt: skip
        python = os.path.realpath(config.python)
        for src in _system_paths(python):
            argv += ["--ro-bind", src, src]
        argv += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                 "--ro-bind", config.site, "/site",
                 "--ro-bind-data", data("page", html), "/page.html", "--ro-bind-data", data("code", code), "/code.py",
                 "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
                 "--size", str(config.tmpfs_mb << 20), "--tmpfs", "/tmp", "--chdir", "/tmp", "--remount-ro", "/",
                 python, "-I", "-S", "-B", "-X", "utf8", "-c", RUNNER, str(ready_w), bpf,
                 *(f"{k}={v}" for k, v in config.rlimits().items())]  # fmt: skip
        ids = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(*fds, ready_w, info_w), env={}, cwd="/", start_new_session=True,
                                    **ids)  # fmt: skip
        except OSError as e:
            raise SandboxUnavailable(f"{bwrap} could not be started: {e}") from e
        finally:
            os.close(ready_w)
            os.close(info_w)
        with proc:
            out, err, ready, timed_out, truncated = _collect(proc, ready_r, info_r, t0 + config.timeout_s,
                                                             config.output_bytes)
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if not ready:
        what = f"within {config.timeout_s} s" if timed_out else f"(bwrap exit {proc.returncode})"
        raise SandboxUnavailable(f"the sandbox did not come up {what}: {stderr.strip()[-2000:] or 'no message'}")
    rc = -signal.SIGKILL if timed_out or truncated else proc.returncode  # bwrap's 137 or -9: killed by us
    if timed_out:
        error = f"timed out after {config.timeout_s} s"
    elif truncated:
        error = f"output over {config.output_bytes} bytes: stopped"
    elif rc == 0:
        error = None
    elif rc > 128 and rc - 128 in signal.valid_signals():
        error = f"killed by {signal.Signals(rc - 128).name}"
    else:
        lines = stderr.strip().splitlines()
        error = lines[-1] if lines else f"exit code {rc}"
    return SandboxResult(stdout, stderr, error, rc, timed_out, truncated, round(time.monotonic() - t0, 4))


def _collect(proc: subprocess.Popen, ready_r: int, info_r: int, deadline: float, cap: int):
    """Read stdout, stderr, the ready pipe and bwrap's info until all close, the deadline passes
    or an output goes over ``cap`` bytes (then kill the sandbox: ``_kill``).
    -> (stdout, stderr, ready, timed_out, truncated)"""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), info_r: bytearray()}
    ready = timed_out = truncated = False
    with selectors.DefaultSelector() as sel:
        for f in (*bufs, ready_r):
            sel.register(f, selectors.EVENT_READ)
        while sel.get_map() and not truncated:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                elif key.fd == ready_r:
                    ready = True
                elif key.fd != info_r and len(buf := bufs[key.fd]) + len(chunk) > cap:
                    buf += chunk[: cap - len(buf)]
                    truncated = True
                else:
                    bufs[key.fd] += chunk
    if timed_out or truncated:
        _kill(proc, bufs[info_r])
    proc.wait()
    if not ready:  # written before any output: unread only if the deadline cut the loop short
        os.set_blocking(ready_r, False)
        with contextlib.suppress(BlockingIOError):
            ready = bool(os.read(ready_r, 1))
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), ready, timed_out, truncated


def _kill(proc: subprocess.Popen, info: bytes) -> None:
    """Kill the sandbox: the PID namespace's init first (the kernel then kills everything in the
    namespace, and bwrap, its parent, reaps it and exits), then bwrap's process group."""
    with contextlib.suppress(ValueError, KeyError, TypeError, ProcessLookupError):
        os.kill(int(json.loads(info)["child-pid"]), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@functools.cache
def _seccomp_bpf(site: str) -> bytes:
    """The seccomp filter as a BPF program for this machine's architecture, compiled by libseccomp
    once per process through the site directory's pyseccomp (the ``html`` extra's pin): ``DENIED``,
    a new process (``clone`` without ``CLONE_THREAD``; ``clone3`` answers ENOSYS, so glibc makes
    threads with ``clone``) and sockets other than AF_UNIX answer EPERM; any other call is allowed."""
    spec = importlib.util.spec_from_file_location("_sandbox_pyseccomp", Path(site) / "pyseccomp.py")
    sc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sc)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        f.add_rule(sc.ERRNO(errno.EPERM), name)
    f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, 0x10000, 0))  # CLONE_THREAD unset
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(sc.ERRNO(errno.EPERM), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    with tempfile.TemporaryFile() as fh:
        f.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def _system_paths(python: str) -> list[str]:
    """The read-only binds for ``python``: the system libraries, its prefix when not /usr, itself."""
    paths = [p for p in ("/usr/lib", "/usr/lib64") if os.path.isdir(p)]
    prefix = os.path.dirname(os.path.dirname(python))
    if prefix != "/usr":
        paths.append(prefix)
    return paths + [python]


def _check(config: SandboxConfig) -> str:
    """bwrap's path, once the interpreter and the site directory are there; else what is missing."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is missing: run `make sandbox` "
                                 "(as root it runs `apt-get install bubblewrap`)")
    if not (os.path.isfile(config.python) and os.access(config.python, os.X_OK)):
        raise SandboxUnavailable(f"the sandbox's interpreter {config.python} (env.sandbox.python) is missing")
    site = Path(config.site)
    lacking = [m for m in ("bs4", "lxml", "soupsieve", "pyseccomp.py") if not (site / m).exists()]
    if lacking:
        raise SandboxUnavailable(f"the sandbox's site directory {site} lacks {', '.join(lacking)}: run `make sandbox`")
    return bwrap


@contextlib.contextmanager
def _uid_slot():
    """A root caller's own unprivileged uid for the call (None for any other caller, whose uid
    the sandbox runs as): the first of ``MAX_SLOTS`` slot locks that no other process holds."""
    if os.geteuid() != 0:
        yield None
        return
    os.makedirs(SLOT_DIR, mode=0o700, exist_ok=True)
    st = os.lstat(SLOT_DIR)
    if st.st_uid != 0 or not os.path.isdir(SLOT_DIR) or os.path.islink(SLOT_DIR):
        raise SandboxUnavailable(f"{SLOT_DIR} (the sandbox uid locks) is not a directory owned by root")
    for slot in range(MAX_SLOTS):
        lock = os.open(f"{SLOT_DIR}/{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        try:
            yield UID_BASE + slot
        finally:
            os.close(lock)
        return
    raise SandboxUnavailable(f"all {MAX_SLOTS} sandbox uids are in use (locks in {SLOT_DIR})")


# ----------------------------------------------------------------------------- teachable sandbox-run
CLI_HELP = ("Run a Python file on a page in a fresh sandbox and print the result as JSON (stdout, stderr, "
            "error, exit_code, timed_out, output_truncated, seconds). Exit 0 when the code ran, whatever it "
            "did; 2 with a message for a missing or non-UTF-8 file, a bad timeout or no isolation.")


def _read_text(path: Path, flag: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ValueError(f"{flag} {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{flag} {path} is not UTF-8: {e}") from e


def main(argv: list[str] | None = None) -> int:
    """``teachable sandbox-run``: ``CLI_HELP``."""
    ap = argparse.ArgumentParser(prog="teachable sandbox-run", description=CLI_HELP)
    ap.add_argument("--code", required=True, type=Path, help="the Python file to run (UTF-8)")
    ap.add_argument("--html", required=True, type=Path,
                    help="the page (UTF-8), at /page.html inside; make_soup() returns it parsed")
    ap.add_argument("--timeout", type=float, default=SandboxConfig.timeout_s,
                    help="wall-clock seconds, in (0, 600] (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        code, html = _read_text(args.code, "--code"), _read_text(args.html, "--html")
        result = run_sandboxed(code, html, SandboxConfig(timeout_s=args.timeout))
    except (ValueError, SandboxUnavailable) as e:
        print(f"teachable sandbox-run: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
