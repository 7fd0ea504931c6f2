"""Scale-out: the DAG through a real SLURM (a single-node cluster on localhost, started here) with
--profile profiles/slurm, and sharding at scale (shard count from config, a failed shard alone
reruns, the full-study config's DAG).

The SLURM tests need root (they run slurmctld, slurmd and munged) and install the Debian packages
when missing; they are skipped, with the reason, only without root or without a reachable apt."""
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dag import MICRO, ROOT, planned_jobs, smk_env
from slurm_cluster import PARTITION, LocalSlurm, unavailable_reason

pytestmark = pytest.mark.integration

# the micro config with a quicker embedded student: the point here is the scheduling, not the model
FAST = "student:\n  init:\n    train_steps: 4\n"
# the slice of the DAG run through SLURM: phases 0-1 and the student check (later phases have
# their own tests; this one is about the scheduling)
SLICE = ["results/phase1/labeled_snapshots.parquet", "results/student/eval_summary.json"]
SLURM_RULES = {("student_init", ""), ("student_eval", ""), ("rollouts", ""), ("mine_snapshots", ""),
               ("label_shard", "0"), ("label_shard", "1"), ("merge_labels", "")}


def smk(workdir: Path, *args: str, env=None, timeout=900) -> subprocess.CompletedProcess:
    """Run snakemake; past ``timeout`` it is interrupted (it then cancels its SLURM jobs) and the
    result has returncode None and the output so far."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env or smk_env()) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            return subprocess.CompletedProcess(cmd, None, out, f"{err}\n[timed out after {timeout}s]")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def rule_of(comment: str) -> tuple[str, str]:
    """(rule, wildcards) from the plugin's job comment rule_<rule>[_wildcards_<values>]."""
    m = re.fullmatch(r"rule_(.+?)(?:_wildcards_(.*))?", comment)
    assert m, comment
    return m.group(1), m.group(2) or ""


# ---------------------------------------------------------------- sharding at scale (no SLURM)

def _fake_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    over = tmp_path / "model.yaml"
    over.write_text(f"student:\n  model_path: {model}\n")
    return over


def test_full_config_is_the_study_at_scale(tmp_path):
    full = yaml.safe_load((ROOT / "config/full.yaml").read_text())
    p0, p1 = full["phase0"], full["phase1"]
    assert 900 <= p0["a_tasks"] <= 1100
    assert 1800 <= sum(p1["max_snapshots"].values()) <= 2200
    assert p1["n_rollouts"] >= 7 and p1["n_shards"] >= 100
    p = smk(tmp_path, "-n", "--configfile", str(ROOT / "config/full.yaml"), str(_fake_model(tmp_path)))
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = planned_jobs(p.stdout)
    print("\nconfig/full.yaml:", jobs)
    assert {k: jobs.get(k) for k in ("student_init", "student_eval", "rollouts", "mine_snapshots",
                                     "label_shard", "merge_labels")} == {
        "student_init": None,  # a real model: no embedded student to build
        "student_eval": 1, "rollouts": 1, "mine_snapshots": 1,
        "label_shard": p1["n_shards"], "merge_labels": 1}


def test_full_config_without_a_model_names_the_key(tmp_path):
    p = smk(tmp_path, "-n", "--configfile", str(ROOT / "config/full.yaml"))
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "student.model_path" in out and "TEACHABLE_MODEL_PATH" in out, out[-2000:]


def test_label_shards_follow_the_config(tmp_path):
    over = tmp_path / "shards.yaml"
    over.write_text("phase1:\n  n_shards: 37\n")
    p = smk(tmp_path, "-n", "--configfile", str(MICRO), str(over))
    assert p.returncode == 0, p.stderr[-3000:]
    assert planned_jobs(p.stdout)["label_shard"] == 37


def test_a_failed_shard_reruns_alone(tmp_path):
    """50 shards; the run died with shard 17 failed (so merge_labels never ran): the next run
    plans shard 17 and the merge, nothing else. Outputs are placeholders made up to date with
    --touch (a dry-run reads only the DAG and the files' times)."""
    over = tmp_path / "shards.yaml"
    over.write_text("phase1:\n  n_shards: 50\n")
    # targets first: --configfile takes every following word
    args = ("results/phase1/labeled_snapshots.parquet", "--configfile", str(MICRO), str(over))
    summary = smk(tmp_path, "--summary", *args)
    assert summary.returncode == 0, summary.stderr[-3000:]
    for line in summary.stdout.splitlines()[1:]:
        f, rule = line.split("\t")[0], line.split("\t")[2]
        path = tmp_path / f
        if rule == "student_init":
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    assert smk(tmp_path, "--touch", "--cores", "1", *args).returncode == 0
    assert "Nothing to be done" in smk(tmp_path, "-n", *args).stdout
    shards = tmp_path / "results/phase1/shards"
    for f in ("labels_17.parquet", "teacher_failures_17.parquet"):
        (shards / f).unlink()
    for f in (tmp_path / "results/phase1").glob("*.*"):  # merge_labels never ran
        f.unlink()
    p = smk(tmp_path, "-n", *args)
    assert planned_jobs(p.stdout) == {"label_shard": 1, "merge_labels": 1}, p.stdout[-3000:]
    assert re.search(r"rule label_shard:.*?wildcards: shard=17", p.stdout, re.S)
    # re-running one finished shard on purpose: --forcerun its output (and the merge follows)
    p = smk(tmp_path, "-n", *args, "--forcerun", "results/phase1/shards/labels_3.parquet")
    assert planned_jobs(p.stdout) == {"label_shard": 2, "merge_labels": 1}, p.stdout[-3000:]


# ---------------------------------------------------------------- a real SLURM

@pytest.fixture(scope="module")
def cluster():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    c = LocalSlurm().start()
    try:
        yield c
    finally:
        c.stop()


def _fail(msg: str, workdir: Path, cluster: LocalSlurm, p=None):
    logs = [f"--- {f.relative_to(workdir)}\n{f.read_text(errors='replace')[-2500:]}"
            for pat in ("results/logs/**/*.log", ".snakemake/slurm_logs/**/*.log") for f in workdir.glob(pat)]
    out = f"\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-6000:]}" if p is not None else ""
    pytest.fail(f"{msg}{out}\n" + "\n".join(logs) + f"\nsqueue: {cluster._jobs_quiet()}\n{cluster.logs()}")


def _kill_first_attempt_of(cluster: LocalSlurm, comment: str, done: threading.Event, killed: list):
    """Cluster flakiness: scancel the first SLURM job with this comment after it has run 3 s
    (mid-job: Snakemake's job step has started by then)."""
    seen = None
    while not done.is_set():
        for j in cluster._jobs_quiet():
            if j["comment"] == comment and j["state"] == "RUNNING":
                seen = seen or time.monotonic()
                if time.monotonic() - seen >= 3:
                    cluster.run("scancel", j["id"], check=False)
                    killed.append(j["id"])
                    return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def slurm_run(cluster):
    wd = cluster.root / "work"
    wd.mkdir()
    (wd / "fast.yaml").write_text(FAST)
    env = smk_env(SLURM_CONF=str(cluster.conf), SBATCH_PARTITION=PARTITION)
    env["PATH"] = f"{cluster.root / 'bin'}:{env['PATH']}"  # the cluster's srun shim (see slurm_cluster)
    for k in [k for k in env if k.startswith(("SLURM_", "SBATCH_ACCOUNT"))]:
        if k != "SLURM_CONF":
            del env[k]
    done, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_attempt_of,
                              args=(cluster, "rule_label_shard_wildcards_1", done, killed), daemon=True)
    killer.start()
    t0 = time.monotonic()
    p = smk(wd, *SLICE, "--configfile", str(MICRO), str(wd / "fast.yaml"),
            "--profile", str(ROOT / "profiles/slurm"),
            "--max-threads", "1",  # the node has few CPUs; rules ask for 8 threads
            "--slurm-init-seconds-before-status-checks", "1",
            "--slurm-keep-successful-logs",
            "--set-resources", "student_eval:gpu=1", "student_eval:gpu_model=fake",
            env=env, timeout=420)
    seconds = time.monotonic() - t0
    done.set()
    killer.join(5)
    if p.returncode != 0:
        _fail(f"snakemake --profile profiles/slurm failed ({p.returncode})", wd, cluster, p)
    m = re.search(r"SLURM run ID: (\S+)", p.stdout + p.stderr)
    assert m, (p.stderr[-3000:])
    print(f"\nSLURM run: {seconds:.0f}s for the micro DAG\n"
          + cluster.run("squeue", "--states=all", "-h", "-o", "%.4i %.34k %.10T %V %S %e").stdout)
    return dict(wd=wd, results=wd / "results", proc=p, run_id=m.group(1), killed=killed, seconds=seconds,
                env=env, jobs=[j for j in cluster.jobs() if j["name"] == m.group(1)])


def test_jobs_really_went_through_slurm(slurm_run, cluster):
    jobs, p = slurm_run["jobs"], slurm_run["proc"]
    by_rule = defaultdict(list)
    for j in sorted(jobs, key=lambda j: int(j["id"])):
        by_rule[rule_of(j["comment"])].append(j)
    assert set(by_rule) == SLURM_RULES, by_rule
    for key, js in by_rule.items():
        assert js[-1]["state"] == "COMPLETED", (key, js)
    # partition from the environment (SBATCH_PARTITION); not the cluster's default partition
    assert {j["partition"] for j in jobs} == {PARTITION}
    # Snakemake logged each submission with its SLURM job id and log, and the log is there
    logged = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", p.stdout + p.stderr, re.M))
    assert set(logged) == {j["id"] for j in jobs}, (logged, jobs)
    for j in jobs:
        log = Path(logged[j["id"]])
        assert log.exists() and log.name == f"{j['id']}.log", log
        assert f"rule_{rule_of(j['comment'])[0]}" in log.parts, log


def test_a_cancelled_job_is_retried_alone(slurm_run):
    """retries: in the profile. One shard's SLURM job was scancelled mid-run: only that shard was
    resubmitted, and the run still finished."""
    assert slurm_run["killed"], "the shard-1 job was never seen RUNNING, so it was not cancelled"
    by_rule = defaultdict(list)
    for j in slurm_run["jobs"]:
        by_rule[rule_of(j["comment"])].append(j)
    shard1 = sorted(by_rule[("label_shard", "1")], key=lambda j: int(j["id"]))
    assert [j["id"] for j in shard1][0] == slurm_run["killed"][0]
    assert [j["state"] for j in shard1] == ["CANCELLED", "COMPLETED"], shard1
    assert all(len(js) == 1 for key, js in by_rule.items() if key != ("label_shard", "1")), by_rule


def test_outputs_are_correct(slurm_run):
    res = slurm_run["results"]
    micro = yaml.safe_load(MICRO.read_text())
    ev = json.loads((res / "student/eval_summary.json").read_text())
    assert ev["n"] == micro["student"]["eval_tasks"] and 0 <= ev["success_rate"] <= 1
    assert (res / "student/model/config.json").exists()
    assert set(pd.read_parquet(res / "phase0/rollouts.parquet")["experiment"]) == {"A", "B"}
    df = pd.read_parquet(res / "phase1/labeled_snapshots.parquet")
    shards = [pd.read_parquet(res / f"phase1/shards/labels_{i}.parquet") for i in range(2)]
    assert len(df) > 0 and len(df) == sum(map(len, shards))
    assert df["snapshot_id"].is_unique
    assert set(df["snapshot_id"]) == set(pd.concat(shards)["snapshot_id"])
    for c in ("p_policy", "p_force", "p_expert", "p_demo"):
        assert df[c].between(0, 1).all()
    thr = json.loads((res / "phase1/quadrant_thresholds.json").read_text())
    assert sum(thr["sizes"].values()) == len(df)


def test_gpu_resource_becomes_gpus(slurm_run, cluster):
    """A rule's gpu (+ gpu_model) resource becomes sbatch --gpus=MODEL:N; other jobs get no GPU."""
    for j in slurm_run["jobs"]:
        info = cluster.job_info(j["id"])
        if rule_of(j["comment"])[0] == "student_eval":
            assert re.search(r"TresPerJob=\S*gpu[:/]fake[:=]1", info), info
        else:
            assert not re.search(r"TresPer\w+=\S*gpu", info), info


def test_a_deleted_shard_reruns_alone_on_slurm(slurm_run, cluster):
    """After the run: shard 1's outputs and the merge are gone (as after a failed shard): the next
    run submits shard 1 and the merge only, and shard 1 comes back identical (seeded)."""
    wd, res, env = slurm_run["wd"], slurm_run["results"], slurm_run["env"]
    shard0 = res / "phase1/shards/labels_0.parquet"
    t0 = shard0.stat().st_mtime_ns
    before = pd.read_parquet(res / "phase1/shards/labels_1.parquet")
    for f in ("labels_1.parquet", "teacher_failures_1.parquet"):
        (res / "phase1/shards" / f).unlink()
    (res / "phase1/labeled_snapshots.parquet").unlink()
    args = (*SLICE, "--configfile", str(MICRO), str(wd / "fast.yaml"))
    dry = smk(wd, "-n", *args, env=env)
    assert planned_jobs(dry.stdout) == {"label_shard": 1, "merge_labels": 1}, dry.stdout[-2000:]
    p = smk(wd, *args, "--profile", str(ROOT / "profiles/slurm"), "--max-threads", "1",
            "--slurm-init-seconds-before-status-checks", "1", env=env, timeout=300)
    if p.returncode != 0:
        _fail("the rerun failed", wd, cluster, p)
    run_id = re.search(r"SLURM run ID: (\S+)", p.stdout + p.stderr).group(1)
    rerun = [rule_of(j["comment"]) for j in cluster.jobs() if j["name"] == run_id]
    assert sorted(rerun) == [("label_shard", "1"), ("merge_labels", "")], rerun
    assert shard0.stat().st_mtime_ns == t0
    pd.testing.assert_frame_equal(pd.read_parquet(res / "phase1/shards/labels_1.parquet"), before)
