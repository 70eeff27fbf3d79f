"""Loaded (via PYTHONPATH) by app processes that tests start with TMS_TEST_OFFLINE_DNS=1.

Name lookups then answer from /etc/hosts and address literals only: a fuzzer that invents
webhook host names sends no query to a DNS server, and a name that is not local simply does
not resolve (which the product refuses as it would any unknown name).
"""

import os
import socket

if os.environ.get("TMS_TEST_OFFLINE_DNS") == "1":
    _real_getaddrinfo = socket.getaddrinfo

    def _local_hosts() -> set[str]:
        names = set()
        try:
            with open("/etc/hosts") as hosts:
                for line in hosts:
                    names.update(name.lower() for name in line.split("#", 1)[0].split()[1:])
        except OSError:
            pass
        return names

    _LOCAL = _local_hosts()

    def _offline_getaddrinfo(host, port, *args, **kwargs):
        text = host.decode() if isinstance(host, bytes) else host
        if text is None or text.lower().rstrip(".") in _LOCAL:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        try:
            return _real_getaddrinfo(host, port, *args, **{**kwargs, "flags": kwargs.get("flags", 0)
                                                            | socket.AI_NUMERICHOST})
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (offline test)") from None

    socket.getaddrinfo = _offline_getaddrinfo
