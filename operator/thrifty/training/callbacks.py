"""RLlib callbacks: the energy and SLO figures of each episode, for the progress bar and CSV."""

from __future__ import annotations

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback


class EpisodeFigures(RLlibCallback):
    """Logs each episode's mean cluster power (W) and mean SLO violations per step."""

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        # A multi-agent episode (one agent per workload) repeats the cluster figures in every
        # agent's info: one agent's are the episode's.
        agent_episodes = getattr(episode, "agent_episodes", None)
        if agent_episodes:
            episode = next(iter(agent_episodes.values()))
        infos = [info for info in episode.get_infos() if "cluster_watts" in info]
        if not infos or metrics_logger is None:
            return
        metrics_logger.log_value("cluster_watts", float(np.mean([i["cluster_watts"] for i in infos])))
        metrics_logger.log_value("slo_violations", float(np.mean([i["slo_violations"] for i in infos])))
