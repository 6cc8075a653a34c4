"""corosync.conf text for coroproc's secure links (transport knet) on a netns Cluster.

One interface { } per link with its priority, the nodelist with ringK_addr from each
host's eth<K> address, crypto with a keyfile the caller wrote (0400), votequorum, a log
file and state_dir the runner rewrites per node.
"""
from __future__ import annotations

import os


def write_authkey(path, size_bytes: int = 256) -> str:
    with open(path, "wb") as f:
        f.write(os.urandom(size_bytes))
    os.chmod(path, 0o400)
    return str(path)


def knet_conf(*, cluster_name: str, hosts, links: int, keyfile: str | None,
              link_mode: str = "passive", token_ms: int = 1000,
              priorities: dict[int, int] | None = None, cipher: str = "aes256",
              hash_: str = "sha256", mcast_port: int = 5405) -> str:
    """hosts: netns Hosts (index = nodeid); priorities: link → knet_link_priority."""
    crypto = (["    crypto_cipher: " + cipher, "    crypto_hash: " + hash_,
               f"    keyfile: {keyfile}"] if keyfile else
              ["    crypto_cipher: none", "    crypto_hash: none"])
    lines = ["totem {", "    version: 2", f"    cluster_name: {cluster_name}",
             "    transport: knet", f"    link_mode: {link_mode}", f"    token: {token_ms}",
             *crypto]
    for k in range(links):
        prio = (priorities or {}).get(k, 1)
        lines += ["    interface {", f"        linknumber: {k}",
                  f"        knet_link_priority: {prio}", f"        mcastport: {mcast_port + k}",
                  "    }"]
    lines += ["}", "nodelist {"]
    for h in hosts:
        lines += ["    node {", f"        name: n{h.index}", f"        nodeid: {h.index}"]
        lines += [f"        ring{k}_addr: {h.link_addrs4[k]}" for k in range(links)]
        lines += ["    }"]
    lines += ["}", "quorum {", "    provider: corosync_votequorum", "}",
              "logging {", "    to_stderr: no", "    to_syslog: no", "    to_logfile: yes",
              "    logfile: /dev/null", "    timestamp: hires", "}",
              "system {", "    state_dir: /tmp", "}", ""]
    return "\n".join(lines)
