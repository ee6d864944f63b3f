"""TLS between the Python client and a real `mcpd node`: certificates from `mcpd certs
init`, a node that requires a client certificate of its CA, and a client that connects
with the CA file and its certificate. Without them it is refused."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Cluster
from mcp_rust import (
    ClusterUnavailableError,
    ConfigError,
    DistributedConfig,
    MCPManager,
    NoHealthyInstanceError,
)


def certs_init(mcpd: str, directory: Path, nodes: str) -> None:
    subprocess.run(
        [mcpd, "certs", "init", "--dir", str(directory), "--nodes", nodes],
        check=True,
        capture_output=True,
    )


async def test_a_client_connects_with_the_ca_file_and_its_certificate(mcpd_bin, test_server_bin):
    certs = Path(tempfile.mkdtemp(prefix="mcp-rust-tls-"))
    certs_init(mcpd_bin, certs, "n1")
    cluster = Cluster(
        mcpd_bin,
        1,
        extra_args=[
            "--tls-cert", str(certs / "node-n1.pem"),
            "--tls-key", str(certs / "node-n1-key.pem"),
            "--tls-ca", str(certs / "ca.pem"),
            "--tls-client-auth", "required",
        ],
    )
    try:
        manager = MCPManager(
            distributed=DistributedConfig(
                cluster_nodes=cluster.nodes,
                tls_ca_file=str(certs / "ca.pem"),
                tls_cert_file=certs / "client.pem",
                tls_key_file=certs / "client-key.pem",
            )
        )
        assert await manager.deploy_server({"name": "a", "command": test_server_bin}) == "a"
        result = None
        for _ in range(600):  # up to a minute for the instance to start
            try:
                result = await manager.execute_tool("a", "echo", {"text": "over tls"})
                break
            except NoHealthyInstanceError:
                await asyncio.sleep(0.1)
        assert result is not None, cluster.logs()
        assert result["content"][0]["text"] == "over tls"
        await manager.stop()

        # Plaintext, and TLS without a client certificate, are refused by this node.
        for refused in (
            DistributedConfig(cluster_nodes=cluster.nodes, leader_election_timeout_secs=0.1),
            DistributedConfig(
                cluster_nodes=cluster.nodes,
                leader_election_timeout_secs=0.1,
                tls_ca_file=str(certs / "ca.pem"),
            ),
        ):
            with pytest.raises(ClusterUnavailableError):
                await MCPManager(distributed=refused).start()
    finally:
        cluster.close()


def test_tls_files_are_checked_when_configured(tmp_path, mcpd_bin):
    with pytest.raises(ConfigError) as missing:
        DistributedConfig(cluster_nodes=["127.0.0.1:1"], tls_ca_file=str(tmp_path / "nope.pem"))
    assert "tls_ca_file" in str(missing.value)
    certs_init(mcpd_bin, tmp_path, "n1")
    with pytest.raises(ConfigError) as half:
        DistributedConfig(
            cluster_nodes=["127.0.0.1:1"],
            tls_ca_file=str(tmp_path / "ca.pem"),
            tls_cert_file=str(tmp_path / "client.pem"),
        )
    assert "tls_key_file" in str(half.value)
    with pytest.raises(ConfigError):
        DistributedConfig(cluster_nodes=["127.0.0.1:1"], tls_cert_file=str(tmp_path / "client.pem"))
    config = DistributedConfig(cluster_nodes=["127.0.0.1:1"], tls_ca_file=str(tmp_path / "ca.pem"))
    assert config.tls_ca_file == str(tmp_path / "ca.pem")
