"""Running fastim as a cluster: HAProxy in front of several nodes (docs/scaling.md).

`deploy.haproxy` writes the proxy's configuration and runs it; `python -m deploy.cluster`
(`make cluster`) starts a local cluster to try.
"""
