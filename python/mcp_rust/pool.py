"""``ConnectionPool``: lend out connections to servers, at most ``max_size`` per server.

The sessions themselves live in the Rust data plane (pooled, health-checked, behind
circuit breakers; ``PoolConfig`` sizes them when given to ``MCPManager(pool=...)``). The
pool here bounds how many callers use one server at once, and waits at most
``connection_timeout_ms`` for a free connection::

    pool = ConnectionPool(PoolConfig(max_size=100))
    async with pool.get_connection("server-1") as conn:
        result = await conn.execute({"method": "tools/list"})
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Mapping, Optional

from ._native import PoolConfig
from .errors import ManagerStoppedError, MCPTimeoutError
from .manager import MCPManager, RequestLike, default_manager

__all__ = ["ConnectionPool", "Connection"]


class Connection:
    """A connection to one server, lent by a :class:`ConnectionPool`."""

    def __init__(self, pool: "ConnectionPool", manager: MCPManager, server_id: str) -> None:
        self.pool = pool
        self.manager = manager
        self.server_id = server_id
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise ManagerStoppedError(f"this connection to {self.server_id!r} was returned to its pool")

    async def execute(self, request: RequestLike, **kwargs: Any) -> Any:
        """Sends a JSON-RPC request (see :meth:`MCPManager.execute`)."""
        self._check()
        return await self.manager.execute(self.server_id, request, **kwargs)

    async def execute_tool(self, tool_name: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Dict[str, Any]:
        """Calls a tool (see :meth:`MCPManager.execute_tool`)."""
        self._check()
        return await self.manager.execute_tool(self.server_id, tool_name, params, **kwargs)

    def __repr__(self) -> str:
        return f"<Connection to {self.server_id!r}{' (returned)' if self.closed else ''}>"


class _Checkout:
    def __init__(self, pool: "ConnectionPool", server_id: str) -> None:
        self.pool = pool
        self.server_id = server_id
        self.conn: Optional[Connection] = None

    async def __aenter__(self) -> Connection:
        self.conn = await self.pool.acquire(self.server_id)
        return self.conn

    async def __aexit__(self, *exc_info: Any) -> None:
        if self.conn is not None:
            self.pool.return_connection(self.conn)


class ConnectionPool:
    """Lends connections to servers of a manager, at most ``config.max_size`` per server.

    Args:
        config: sizes and timeouts (:class:`PoolConfig`); defaults when omitted.
        manager: the manager whose servers to reach. Default: the most recently started
            manager that is still running.
    """

    def __init__(self, config: Optional[PoolConfig] = None, manager: Optional[MCPManager] = None) -> None:
        self.config = config if config is not None else PoolConfig()
        self._manager = manager
        self._slots: Dict[str, asyncio.Semaphore] = {}
        self._in_use: Dict[str, int] = {}

    @property
    def manager(self) -> MCPManager:
        """The manager this pool lends connections of."""
        manager = self._manager or default_manager()
        if manager is None:
            raise ManagerStoppedError(
                "ConnectionPool has no manager: start an MCPManager first, or pass manager="
            )
        return manager

    def get_connection(self, server_id: str) -> _Checkout:
        """``async with pool.get_connection(id) as conn:`` — the connection is returned
        when the block ends."""
        return _Checkout(self, str(server_id))

    async def acquire(self, server_id: str) -> Connection:
        """Waits for a free connection to ``server_id`` (at most ``connection_timeout_ms``)."""
        manager = self.manager
        slots = self._slots.get(server_id)
        if slots is None:
            slots = self._slots[server_id] = asyncio.Semaphore(self.config.max_size)
        timeout = self.config.connection_timeout_ms / 1000.0
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise MCPTimeoutError(
                f"no free connection to {server_id!r} within {self.config.connection_timeout_ms} ms "
                f"({self.config.max_size} in use)"
            ) from None
        self._in_use[server_id] = self._in_use.get(server_id, 0) + 1
        return Connection(self, manager, server_id)

    def return_connection(self, conn: Connection) -> None:
        """Gives a connection back (the ``async with`` form does this itself)."""
        if conn.closed:
            return
        conn.closed = True
        self._in_use[conn.server_id] -= 1
        self._slots[conn.server_id].release()

    def in_use(self, server_id: str) -> int:
        """Connections to ``server_id`` lent out now."""
        return self._in_use.get(server_id, 0)

    def __repr__(self) -> str:
        return f"<ConnectionPool max_size={self.config.max_size} in_use={sum(self._in_use.values())}>"
