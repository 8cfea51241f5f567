"""Node training on a Ray cluster: the search process stays the coordinator, the task's
data goes to the cluster's object store once, and each slice of nodes is one Ray task
that trains them together (`scoring.train_nodes`). A node's score depends on its text and
the seed only, so the results are those of the in-process search.

Ray is imported only here, when asked for (`pip install "neurosym-synth[ray]"`). A slice
whose worker dies, or that does not answer in time, is reported back as lost with the
reason, and the scorer retries its nodes (as it does for its local pool).
"""

from __future__ import annotations

from neurosym.lang.errors import SearchError

_CACHES: dict[str, object] = {}  # per worker process: the feature cache of each task


def _train_slice(task, settings, library, key: str, items):
    from neurosym.search.scoring import train_nodes
    from neurosym.search.skeleton import FeatureCache

    cache = _CACHES.get(key)
    if cache is None:
        _CACHES.clear()  # one search at a time per worker
        cache = _CACHES[key] = FeatureCache(task.to(settings.device), library)
    return train_nodes(cache.task, items, settings, library, cache)


class RayWorkers:
    """Slices of nodes trained as Ray tasks, `workers` of them at a time."""

    def __init__(self, task, settings, library, workers: int, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise SearchError("the Ray executor needs Ray: pip install "
                              "\"neurosym-synth[ray]\" (or pip install ray)") from None
        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            try:
                ray.init(address=address, num_cpus=None if address else workers,
                         include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise SearchError(f"cannot start or reach {where}: "
                                  f"{str(err).splitlines()[0]}") from None
        self.task = ray.put(task)  # once: every task reads it from the object store
        self.key = self.task.hex()
        self.settings, self.library = settings, library
        # no retries by Ray: the scorer retries lost nodes one by one, as for its pool
        self.remote = ray.remote(num_cpus=1, max_retries=0)(_train_slice)

    def run(self, parts: list[list], timeout: float | None) -> list:
        """Each slice's scores, the exception it raised, or why it was lost (a string)."""
        ray = self.ray
        refs = [self.remote.remote(self.task, self.settings, self.library, self.key, part)
                for part in parts]
        out: list[list | str] = []
        for ref in refs:
            try:
                out.append(ray.get(ref, timeout=timeout))
            except ray.exceptions.GetTimeoutError:
                ray.cancel(ref, force=True)
                out.append("it did not answer in time")
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.ObjectLostError) as err:
                out.append(f"its Ray worker was lost ({type(err).__name__})")
            except ray.exceptions.RayTaskError as err:  # what the slice raised, unwrapped
                out.append(err.cause if isinstance(err.cause, Exception) else err)
        return out

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()
