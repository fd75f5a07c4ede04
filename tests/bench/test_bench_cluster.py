"""The measurement tool behind docs/scaling.md (bench/cluster.py) runs end to end (tiny sizes: it checks
that the figures can be produced, not what they are)."""

from __future__ import annotations

import json
import secrets

import pytest

from bench import cluster as measure
from tests.cluster_support import RedisServer

pytestmark = [pytest.mark.mysql, pytest.mark.redis]


def test_every_figure_is_produced(mysql_database: str, private_redis: RedisServer,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    measure.main(["all", "--db", f"{mysql_database}_m{secrets.token_hex(2)}",
                  "--redis", private_redis.url, "--connections", "4", "--members", "5",
                  "--messages", "3", "--seconds", "0.05",
                  # no wait for RSS to settle: the figures must be produced, their values
                  # do not matter here (3 s fewer per memory run)
                  "--settle", "0"])
    report = json.loads(capsys.readouterr().out)
    assert [m["bus"] for m in report["memory"]] == ["local", "redis"]
    local, redis = report["fanout"]
    assert (local["deliveries"], redis["deliveries"]) == (12, 12)  # 4 receivers x 3
    assert redis["group_channel_subscribers"] == 2  # two nodes, not four members
    assert redis["redis_per_chat_message"]["publish"] == 1.0
    assert report["direct"]["redis_per_chat_message"]["publish"] == 2.0
    assert report["store"]["batch_256_per_second"] > 0
