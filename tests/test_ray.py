"""Node training on a real (local) Ray cluster: the same programs as in-process, and a
Ray worker killed mid-search costs nothing but time."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from neurosym.search import synthesize
from neurosym.search.scoring import NodeSettings, Scorer
from neurosym.train import TrainConfig
from tests.test_search import tiny_task

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def test_ray_finds_what_the_search_finds_in_process():
    # the node budget ends these searches; the time limit only has to leave room for
    # Ray's workers to start (importing torch), slow on a busy machine
    kwargs = dict(algorithm="astar", time_limit=900, max_depth=3, epochs_per_node=2,
                  final_epochs=2, max_nodes=14, top_k=2, cv_folds=0)
    local = synthesize(tiny_task(), **kwargs)
    on_ray = synthesize(tiny_task(), executor="ray", workers=2, **kwargs)
    assert on_ray.stats.trained == local.stats.trained == 14
    assert [(p.text, p.f) for p in on_ray.programs] == [(p.text, p.f) for p in local.programs]


def _ray_tasks_running() -> list[int]:
    """Processes executing our Ray task right now (Ray names them after the function)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(
                    b"ray::_train_slice"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_nodes_of_a_ray_worker_killed_while_training_are_trained_again():
    task = tiny_task()
    # trained relaxations: nodes that train long enough to be killed (solved ones take ms)
    settings = NodeSettings(TrainConfig(epochs=200, patience=200, batch_size=8, lr=0.01),
                            relaxation="trained")
    texts = [f"\\xs -> {p}" for p in ("?? (mean xs)", "?? (std xs)", "mean (map ?? xs)",
                                      "add (?? (mean xs)) (?? (last xs))")]
    alone = Scorer(task, settings).score([(t, None) for t in texts])
    scorer = Scorer(task, settings, workers=2, executor="ray")
    killed: list[int] = []

    def kill() -> None:
        for _ in range(100):
            running = _ray_tasks_running()
            if running:
                killed.append(running[0])
                os.kill(running[0], signal.SIGKILL)
                return
            threading.Event().wait(0.05)

    timer = threading.Timer(0.3, kill)
    timer.start()
    try:
        scores = scorer.score([(t, None) for t in texts])
    finally:
        timer.join()
        scorer.close()
    assert killed
    for a, b in zip(alone, scores):
        assert b.error is None and abs(a.h - b.h) <= 1e-6


def test_a_search_whose_ray_worker_is_killed_finds_what_an_undisturbed_one_finds():
    kwargs = dict(algorithm="astar", time_limit=900, max_depth=3, epochs_per_node=60,
                  final_epochs=2, max_nodes=10, top_k=2, cv_folds=0)
    calm = synthesize(tiny_task(), **kwargs)
    killed: list[int] = []
    done = threading.Event()

    def kill_the_first_running_task() -> None:
        while not done.is_set() and not killed:
            running = _ray_tasks_running()
            if running:
                killed.append(running[0])
                os.kill(running[0], signal.SIGKILL)
            done.wait(0.02)

    watcher = threading.Thread(target=kill_the_first_running_task)
    watcher.start()
    try:
        hit = synthesize(tiny_task(), executor="ray", workers=2, **kwargs)
    finally:
        done.set()
        watcher.join()
    assert killed
    assert [(p.text, p.f) for p in hit.programs] == [(p.text, p.f) for p in calm.programs]
