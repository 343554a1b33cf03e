"""Batch mode on a Dask cluster: a local ``dask.distributed`` cluster of two worker processes."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'dask[distributed]'; pinned in "
                          "requirements.txt), so the cluster test cannot run")

from test_cohort import good_cohort, read_rows  # noqa: E402

from TTVPrognosisLib.cli import main  # noqa: E402
from TTVPrognosisLib.cohort.runner import run_cohort  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as local_cluster:
        yield local_cluster


def test_cohort_runs_on_a_dask_cluster(cluster, tmp_path):
    manifest = good_cohort(tmp_path, 6)
    reference = run_cohort(manifest, tmp_path / "local.csv", tmp_path / "local_lesions.csv", workers=1)
    with distributed.Client(cluster) as client, distributed.get_task_stream(client) as tasks:
        done = []
        result = run_cohort(manifest, tmp_path / "dask.csv", tmp_path / "dask_lesions.csv",
                            executor=client.get_executor(), progress=lambda d, t, p: done.append(p))
    ran = [task for task in tasks.data if task["key"].startswith("process_patient")]
    assert result.ok and reference.ok and result.computed == 6
    assert len(ran) == 6 and len({task["worker"] for task in ran}) == 2  # both cluster workers did patients
    assert sorted(patient for patient in done if patient) == [f"P{n:03d}" for n in range(1, 7)]
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "dask_lesions.csv").read_bytes() == (tmp_path / "local_lesions.csv").read_bytes()


def test_cli_dask_scheduler_option(cluster, tmp_path, capsys):
    manifest = good_cohort(tmp_path, 3)
    assert main(["batch", str(manifest), "--output", str(tmp_path / "r.csv"),
                 "--dask-scheduler", cluster.scheduler_address]) == 0
    assert "3 of 3 patients succeeded" in capsys.readouterr().out
    assert [row["status"] for row in read_rows(tmp_path / "r.csv").values()] == ["ok"] * 3
