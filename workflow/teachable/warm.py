"""`teachable warm -- COMMAND...`: run COMMAND (e.g. snakemake) with a warm interpreter beside it,
so each of its `teachable` jobs skips Python's start and the imports of torch, transformers and
peft (~6 s of CPU per job on the pilot's 2 cores; ~100 jobs per pilot).

The server imports the heavy modules once, then listens on a Unix socket (in a private temp dir,
``$TEACHABLE_WARM`` in COMMAND's environment). A `teachable` step that finds the variable hands
the server its argv, working directory, environment and standard streams (the fds themselves:
the rule's ``2> log`` stays the log) and waits; the server forks a child that runs the step
exactly as a fresh process would (same code, same config, the step's own environment and thread
count) and reports its exit status. Without the variable, or when the server is not (yet)
listening, the step runs in its own process as before: the DAG, rules, logs and profiles do not
change, only where the interpreter comes from.

Fork safety: the server imports with ``OMP_NUM_THREADS=1`` (``import torch`` otherwise starts
OpenMP workers, which a forked child cannot use) and runs no tensor op; a child sets the thread
count the step would get in a fresh process (``OMP_NUM_THREADS``, else ``MKL_NUM_THREADS``, else
torch's default, probed once in a fresh interpreter), restores torch's default generator to its
state after ``import torch`` and reseeds Python's and numpy's global generators from the OS.
A job killed by Snakemake drops its connection; the server then kills the child.

The rules' ``benchmark:`` files measure the waiting client: their wall seconds are the step's,
their CPU and memory columns are not; the step's CPU seconds and max RSS (of the forked child)
end its log.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback

ENV = "TEACHABLE_WARM"
PRELOAD = (  # what the steps import; a module missing here is imported by the child itself
    "torch", "transformers", "peft", "trl", "datasets", "pandas", "pyarrow.parquet", "scipy.stats",
    "sklearn.linear_model", "matplotlib.pyplot", "teachable.cli", "teachable.policies.hf", "teachable.training",
    "teachable.labeling", "teachable.evaluation", "teachable.selection", "teachable.microtrain",
    "teachable.predictor", "teachable.reporting",
)  # fmt: skip
_HEAD = struct.Struct("!Q")  # the request's length, sent with the three fds
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------------------------ client
def forward(argv: list[str]) -> int | None:
    """Run ``teachable argv`` in the warm server named by ``$TEACHABLE_WARM``: its exit status, or
    None where there is no server listening (the caller runs the step itself)."""
    path = os.environ.get(ENV)
    if not path:
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    req = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    with s:
        socket.send_fds(s, [_HEAD.pack(len(req))], [0, 1, 2])
        s.sendall(req)
        reply = b""
        while not reply.endswith(b"\n") and (chunk := s.recv(64)):
            reply += chunk
    if not reply.endswith(b"\n"):
        print(f"teachable warm: the server at {path} ended without the status of {argv[:1]}", file=sys.stderr)
        return 1
    code, pid, cpu, rss = reply.split()
    # what the rule's benchmark file cannot see (it measures this client): the step's own usage
    print(f"teachable warm: ran in the warm server as pid {pid.decode()}: CPU {cpu.decode()} s, "
          f"max RSS {rss.decode()} MB", file=sys.stderr)
    return int(code)


# ------------------------------------------------------------------------------------ server
def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("client left before its request was read")
        buf += chunk
    return buf


def _fresh_threads() -> int:
    """torch's intra-op thread count in a fresh interpreter with no thread variable set."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARS}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout)


def _job_threads(env: dict[str, str], default: int) -> int:
    """The intra-op threads torch takes in a fresh process with environment ``env``."""
    for k in _THREAD_VARS:
        if env.get(k, "").strip().isdigit() and int(env[k]) > 0:
            return int(env[k])
    return default


def _run_child(req: dict, fds: list[int], torch_rng, threads: int | None) -> None:
    """In the forked child: become the step's process, run it, exit with its status. What the
    server imported is set as a fresh process would find it; the rest the step imports itself."""
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
        os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update({k: v for k, v in req["env"].items() if k != ENV})
    sys.argv = ["teachable", *req["argv"]]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(_job_threads(os.environ, threads))
        torch.random.set_rng_state(torch_rng)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    import random

    random.seed()
    code = 0
    try:
        from .cli import run

        run(req["argv"])
    except SystemExit as e:  # as the interpreter reads it: None 0, an int itself, else printed and 1
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported as a fresh interpreter would, exit status 1
        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str, preload: tuple[str, ...] = PRELOAD) -> None:
    """Import ``preload``, listen at ``path``, fork a child per request until SIGTERM/SIGINT."""
    import importlib

    threads = torch_rng = None
    if "torch" in preload:  # imported first, with one thread (no OpenMP workers to fork)
        threads = _fresh_threads()
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch_rng = torch.random.get_rng_state()
    for m in preload:
        importlib.import_module(m)
    if "torch" in sys.modules and torch_rng is None:
        raise ValueError(f"warm server: preload {preload} imports torch: name 'torch' first (threads, generator)")
    sys.stdout.flush()
    sys.stderr.flush()
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path + ".tmp")
    lsock.listen(64)
    os.rename(path + ".tmp", path)  # clients connect once it exists under its name
    sel.register(lsock, selectors.EVENT_READ)
    jobs: dict[int, socket.socket] = {}  # child pid -> its client's connection (open while the client waits)
    stop: list[int] = []
    parent = os.getppid()  # `teachable warm`: when it is gone (killed), so is the server
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    try:
        while not stop and os.getppid() == parent:
            for key, _ in sel.select(timeout=0.05):
                if key.fileobj is lsock:
                    _start(lsock, sel, jobs, torch_rng, threads)
                elif not key.fileobj.recv(1):  # the client left (killed): its job goes too
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    os.kill(key.data, signal.SIGTERM)
            while jobs:
                pid, status, ru = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = jobs.pop(pid)
                if conn.fileno() >= 0:
                    sel.unregister(conn)
                    code = os.waitstatus_to_exitcode(status)  # killed by signal s: -s, as a shell says 128 + s
                    with conn:
                        try:
                            conn.sendall(f"{code if code >= 0 else 128 - code} {pid} {ru.ru_utime + ru.ru_stime:.2f} "
                                         f"{ru.ru_maxrss / 1024:.1f}\n".encode())  # fmt: skip
                        except OSError:
                            pass
    finally:
        for pid in jobs:
            os.kill(pid, signal.SIGTERM)
        lsock.close()
        os.unlink(path)


def _start(lsock: socket.socket, sel: selectors.BaseSelector, jobs: dict, torch_rng, threads: int | None) -> None:
    """Accept one request and fork its child."""
    conn, _ = lsock.accept()
    try:
        msg, fds, _, _ = socket.recv_fds(conn, _HEAD.size, 3)
        req = json.loads(_recv_exact(conn, _HEAD.unpack(msg)[0]))
    except (OSError, ValueError, struct.error, ConnectionError):
        conn.close()
        return
    pid = os.fork()
    if pid == 0:  # the child keeps only the step's streams
        sel.close()
        for s in (lsock, conn, *jobs.values()):
            s.close()
        _run_child(req, fds, torch_rng, threads)
    for fd in fds:
        os.close(fd)
    jobs[pid] = conn
    sel.register(conn, selectors.EVENT_READ, pid)


def main(argv: list[str]) -> int:
    """`teachable warm [--] COMMAND...`: start the server, run COMMAND with ``$TEACHABLE_WARM``
    set, stop the server; COMMAND's exit status."""
    import argparse

    p = argparse.ArgumentParser(prog="teachable warm", description=__doc__.split("\n\n")[0],
                                epilog="e.g. teachable warm -- snakemake --profile profiles/local --configfile config/pilot.yaml")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments (after --)")
    argv = p.parse_args(argv).command
    argv = argv[1:] if argv[:1] == ["--"] else argv
    if not argv:
        p.error("no command given")
    with tempfile.TemporaryDirectory(prefix="teachable-warm-") as d:
        path = os.path.join(d, "sock")
        server = subprocess.Popen([sys.executable, "-c", f"from teachable.warm import serve; serve({path!r})"])
        try:
            return subprocess.run(argv, env=dict(os.environ, **{ENV: path})).returncode
        except KeyboardInterrupt:
            return 130
        finally:
            server.terminate()
            server.wait()
