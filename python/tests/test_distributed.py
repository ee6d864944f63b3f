"""Distributed mode against real 3-node `mcpd` clusters: leader discovery, failover after
`kill -9` of the leader, and a Python process joining as a voter."""

from __future__ import annotations

import asyncio
import time

import pytest

from mcp_rust import ClusterUnavailableError, ConfigError, DistributedConfig, MCPManager


async def wait_healthy_instances(manager: MCPManager, server: str, count: int, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        health = await manager.get_health_status()
        entry = health.servers.get(server)
        if entry is not None and entry.healthy_instances >= count:
            return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"{server}: wanted {count} healthy instances, have {entry!r}")
        await asyncio.sleep(0.2)


async def test_client_fails_over_when_the_leader_is_killed(cluster3, time_server_spec):
    dist_config = DistributedConfig(
        cluster_nodes=cluster3.nodes,
        leader_election_timeout_secs=0.4,
    )
    manager = MCPManager(distributed=dist_config)
    async with manager:
        assert manager.mode == "client"
        server_id = await manager.deploy_server(time_server_spec("time", replicas=3))
        await wait_healthy_instances(manager, "time", 3)
        first = await manager.execute_tool(server_id, "get_current_time", {"timezone": "UTC"})
        assert first["isError"] is False

        leader = manager.leader_address
        assert leader in cluster3.nodes
        cluster3.kill(cluster3.node_of(leader))

        # The very next calls succeed: the client moves to a live node by itself.
        for _ in range(5):
            result = await manager.execute_tool(server_id, "get_current_time", {"timezone": "UTC"})
            assert result["isError"] is False
            assert "UTC" in str(result)
        # Writes wait for the new leader and succeed too.
        await manager.scale_server(server_id, 2)
        assert manager.leader_address not in (None, leader)
        servers = {s.name: s for s in await manager.list_servers()}
        assert servers["time"].replicas == 2


async def test_consensus_threshold_waits_for_the_voters(cluster3, test_server_bin):
    manager = MCPManager(
        distributed=DistributedConfig(
            cluster_nodes=cluster3.nodes,
            consensus_threshold=1.0,
            # The failover window (3 election timeouts) bounds how long a write waits for
            # every voter; generous, for a loaded machine.
            leader_election_timeout_secs=3.0,
        )
    )
    async with manager:
        await manager.deploy_server({"name": "all", "command": test_server_bin, "replicas": 0})
        # With a voter down, every voter can no longer apply a write: refused in time.
        follower = next(a for a in cluster3.nodes if a != manager.leader_address)
        cluster3.kill(cluster3.node_of(follower))
        with pytest.raises(ClusterUnavailableError) as info:
            await manager.deploy_server({"name": "two", "command": test_server_bin, "replicas": 0})
        assert "consensus_threshold" in str(info.value)


def test_impossible_thresholds_are_config_errors():
    for bad in (0.5, 0.3, 0.0, 1.5):
        with pytest.raises(ConfigError) as info:
            DistributedConfig(cluster_nodes=["127.0.0.1:1"], consensus_threshold=bad)
        assert info.value.field == "consensus_threshold"


async def test_guide_example5_shape_with_real_addresses(cluster3, test_server_bin):
    dist_config = DistributedConfig(
        cluster_nodes=cluster3.nodes,
        node_id="node-4",
        consensus_threshold=0.7,
        leader_election_timeout_secs=0.5,
    )
    assert dist_config.node_id == 4
    manager = MCPManager(distributed=dist_config)
    try:
        config = {"name": "ex5", "command": test_server_bin}
        server_id = await manager.deploy_server(config)
        assert server_id == "ex5"
    finally:
        await manager.stop()


async def test_python_process_joins_as_a_voter_and_serves_calls(cluster3, test_server_bin):
    member = MCPManager(
        distributed=DistributedConfig(
            cluster_nodes=cluster3.nodes,
            node_id=4,
            leader_election_timeout_secs=0.4,
        )
    )
    client = MCPManager(distributed=DistributedConfig(cluster_nodes=[cluster3.nodes[0]]))
    try:
        await member.start()
        assert member.mode == "member"
        members = {m["id"]: m for m in await client.cluster_members()}
        assert members[4]["voter"] is True
        assert members[4]["address"] == member.local_node_address

        # A server that may run on node 4 only: every call is served by this process.
        await client.deploy_server(
            {"name": "here", "command": test_server_bin, "placement": {"allowed_nodes": [4]}}
        )
        await wait_healthy_instances(client, "here", 1)
        health = await client.get_health_status()
        assert [i.node_id for i in health.servers["here"].instances] == [4]
        via_member = await member.execute_tool("here", "echo", {"text": "local"})
        via_node1 = await client.execute_tool("here", "echo", {"text": "forwarded"})
        assert via_member["content"][0]["text"] == "local"
        assert via_node1["content"][0]["text"] == "forwarded"

        # With a temporary data dir the member cannot come back: stopping leaves the cluster.
        await member.stop()
        deadline = time.monotonic() + 10
        while sorted(m["id"] for m in await client.cluster_members()) != [1, 2, 3]:
            assert time.monotonic() < deadline, await client.cluster_members()
            await asyncio.sleep(0.1)
    finally:
        await client.stop()
        await member.stop()


async def test_unreachable_cluster_is_cluster_unavailable():
    manager = MCPManager(
        distributed=DistributedConfig(cluster_nodes=["127.0.0.1:1"], leader_election_timeout_secs=0.1)
    )
    with pytest.raises(ClusterUnavailableError):
        await manager.start()


async def test_admin_token_is_required_and_sent(mcpd_bin, test_server_bin):
    from conftest import Cluster

    from mcp_rust import UnauthorizedError

    cluster = Cluster(mcpd_bin, 1, extra_args=["--admin-token", "t0ken"])
    try:
        anonymous = MCPManager(distributed=DistributedConfig(cluster_nodes=cluster.nodes))
        with pytest.raises(UnauthorizedError) as info:
            await anonymous.deploy_server({"name": "a", "command": test_server_bin})
        assert "t0ken" not in str(info.value)
        # Reads need a credential too.
        with pytest.raises(UnauthorizedError):
            await anonymous.list_servers()
        admin = MCPManager(
            distributed=DistributedConfig(cluster_nodes=cluster.nodes, admin_token="t0ken")
        )
        assert await admin.deploy_server({"name": "a", "command": test_server_bin}) == "a"
        assert "t0ken" not in repr(admin.distributed)
        # Tool calls run code: they need the token too.
        await wait_healthy_instances(admin, "a", 1)
        with pytest.raises(UnauthorizedError):
            await anonymous.execute_tool("a", "echo", {"text": "anonymous"})
        result = await admin.execute_tool("a", "echo", {"text": "admin"})
        assert result["content"][0]["text"] == "admin"
        await admin.stop()
        await anonymous.stop()
    finally:
        cluster.close()


async def test_a_client_started_after_quorum_loss_still_calls(cluster3, test_server_bin):
    setup = MCPManager(distributed=DistributedConfig(cluster_nodes=cluster3.nodes))
    async with setup:
        await setup.deploy_server({"name": "q", "command": test_server_bin, "replicas": 3})
        await wait_healthy_instances(setup, "q", 3)
    survivor = cluster3.nodes[0]
    for addr in cluster3.nodes[1:]:
        cluster3.kill(cluster3.node_of(addr))
    manager = MCPManager(
        distributed=DistributedConfig(cluster_nodes=cluster3.nodes, leader_election_timeout_secs=0.4)
    )
    async with manager:
        result = await manager.execute_tool("q", "echo", {"text": "no quorum"})
        assert result["content"][0]["text"] == "no quorum"
        assert (await manager.get_health_status()).nodes_reporting == 1
        # Writes need a quorum: refused after the failover window, with the reason.
        with pytest.raises(ClusterUnavailableError):
            await manager.scale_server("q", 1)
    assert survivor in cluster3.nodes
