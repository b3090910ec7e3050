"""torchrun, SLURM-style tasks and several node agents: no processes of ours, still one run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.distributed._procs import SMALL, finish, free_port, only_run_dir, results, run, start

pytestmark = pytest.mark.ddp
DTRAIN = ["-m", "declarative_train"]
TORCHRUN = ["-m", "torch.distributed.run"]


def _check_one_run(cwd: Path, ranks: int = 2) -> Path:
    run_dir = only_run_dir(cwd)
    assert results(run_dir)["status"] == "ok"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    log = (run_dir / "train.log").read_text()
    for rank in range(ranks):
        assert f"[rank {rank}]" in log
    return run_dir


def test_torchrun_with_two_processes_makes_one_run_folder(tmp_path: Path) -> None:
    rc, _, err = run([*TORCHRUN, "--standalone", "--nproc-per-node=2", *DTRAIN, *SMALL], tmp_path)
    assert rc == 0, err
    run_dir = _check_one_run(tmp_path)
    assert results(run_dir)["global_step"] == 6


def test_two_torchrun_node_agents_make_one_run_folder(tmp_path: Path) -> None:
    endpoint = f"localhost:{free_port()}"
    agent = [*TORCHRUN, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
             f"--rdzv-endpoint={endpoint}", "--rdzv-id=two-agents", *DTRAIN, *SMALL]
    procs = [start(agent, tmp_path) for _ in range(2)]
    for proc in procs:
        rc, _, err = finish(proc)
        assert rc == 0, err
    _check_one_run(tmp_path)


def test_two_dtrain_node_agents_with_num_nodes_make_one_run_folder(tmp_path: Path) -> None:
    endpoint = f"localhost:{free_port()}"
    agent = [*DTRAIN, "accelerator.num_nodes=2", f"accelerator.rdzv_endpoint={endpoint}", *SMALL]
    procs = [start(agent, tmp_path) for _ in range(2)]
    for proc in procs:
        rc, _, err = finish(proc)
        assert rc == 0, err
    run_dir = _check_one_run(tmp_path)
    assert "node 1" in (run_dir / "train.log").read_text()


def _slurm_env(rank: int, port: int) -> dict[str, str]:
    return {"SLURM_NTASKS": "2", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0",
            "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "localhost", "SLURM_JOB_NAME": "dtrain",
            "MASTER_PORT": str(port)}


def test_slurm_tasks_make_one_run_folder(tmp_path: Path) -> None:
    # The variables srun sets for a 2-task job step; each task runs dtrain itself.
    port = free_port()
    procs = [start([*DTRAIN, *SMALL], tmp_path, env=_slurm_env(rank, port)) for rank in range(2)]
    for proc in procs:
        rc, _, err = finish(proc)
        assert rc == 0, err
    _check_one_run(tmp_path)


def test_an_invalid_command_line_exits_2_on_every_rank(tmp_path: Path) -> None:
    port = free_port()
    procs = [start([*DTRAIN, "trainer.max_epochs=-5", "trainer.max_steps=-1"], tmp_path, env=_slurm_env(rank, port))
             for rank in range(2)]
    codes = [finish(proc, timeout=120) for proc in procs]
    assert [code for code, _, _ in codes] == [2, 2], codes
    assert "trainer.max_epochs" in codes[0][2]
