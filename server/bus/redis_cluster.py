"""Redis Cluster URLs: `redis+cluster://[user:password@]host:port[,host:port...]`."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_client(url: str, timeout: float = 3.0) -> RedisCluster:
    """A cluster client for `redis+cluster://[user:password@]host:port[,host:port...]`.

    Every listed node is a startup node (one that answers is enough); `rediss+cluster://`
    uses TLS. Like the single-node client its failures surface at once: the bus owns retries.

    Raises:
        ValueError: not a cluster URL, no node, a database other than 0, or a query string.
    """
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {parts.scheme}://")
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0")
    if parts.query:
        raise ValueError("Redis Cluster URLs take no query parameters")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, colon, port = address.rpartition(":")
        if not colon or address.endswith("]") or not port.isdigit():
            host, port = address, "6379"
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("a Redis Cluster URL needs at least one host:port")
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=CLUSTER_SCHEMES[parts.scheme],
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
