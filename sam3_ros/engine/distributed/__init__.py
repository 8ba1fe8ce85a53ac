"""Object sharding across devices (``placement: objects``): coordinator + tracker worker processes."""

from .sharded import ShardedCounters, ShardedEngine, load_sharded_engine

__all__ = ["ShardedCounters", "ShardedEngine", "load_sharded_engine"]
